"""What gets announced at all, on SQLite and PostgreSQL: never the back
catalogue, a post that could not be written is kept and written again, and
an article can be announced by hand, once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from tests.sitekit import build_site

from dispatch.config import Settings, load_settings
from dispatch.content.loader import load_site
from dispatch.pipeline import run_pass
from dispatch.social import queue as q
from dispatch.social import queue_by_hand, queue_social
from dispatch.social.stage import social_stage
from dispatch.store import migrations
from dispatch.store.engine import Store, open_store
from dispatch.store.schema import social_networks, social_posts
from sitekit import write_article

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
STAGES = [("social", social_stage)]
# Bluesky counts the URL in full: with this limit not even the link fits.
TOO_SHORT = 'limit = 40\nutm = "utm_source={network}&utm_campaign={slug}"\n'
SOCIAL = """
[social]
utm = ""

[social.mastodon]

[social.bluesky]
"""


def front(title: str, date: str = "2026-10-06T07:00:00") -> str:
    return f"title: {title}\ndate: {date}\ntags: [sleep]\n"


BODY = "Intro.\n\n## Key takeaway\n\nSleep seven hours. Keep a fixed wake-up time.\n"


def reload(settings: Settings) -> Settings:
    return load_settings(settings.root, environ={"DISPATCH_DATABASE_URL": settings.database_url})


@pytest.fixture
def site(site_root: Path, database_url: str) -> Iterator[tuple[Settings, Store]]:
    """A site with three articles already published and two networks, never run."""
    settings, store = build_site(
        site_root, toml=SOCIAL, database_url=database_url,
        articles={f"{slug}.md": (front(slug.title()), BODY) for slug in ("one", "two", "three")})
    yield settings, store
    store.dispose()


def captured(settings: Settings) -> list[str]:
    folder = settings.state_dir / "social"
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.json"))


def test_fresh_site_announces_nothing_then_each_new_article_once(
        site: tuple[Settings, Store]) -> None:
    settings, store = site
    first = run_pass(settings, store, NOW, stages=STAGES)
    assert sorted(first.new) == ["one", "three", "two"]
    assert first.stages[0].summary.startswith(
        "queued 0 (mastodon, bluesky: first pass, 3 already published (recorded, "
        "not announced)")
    assert first.first
    assert q.posts_for(store) == [] and captured(settings) == []

    write_article(settings.root, "four.md", front("Four", "2026-11-02T09:30:00"), BODY)
    later = NOW + timedelta(hours=1)
    second = run_pass(settings, store, later, stages=STAGES)
    assert second.new == ("four",)
    assert second.stages[0].summary.startswith("queued 2, sent 2")
    assert captured(settings) == ["bluesky/four.json", "mastodon/four.json"]
    third = run_pass(settings, store, later + timedelta(hours=1), stages=STAGES)
    assert third.stages[0].summary.startswith("queued 0, sent 0")
    assert q.status_counts(store) == {"sent": 2}


def test_a_network_added_later_never_posts_the_back_catalogue(
        site: tuple[Settings, Store]) -> None:
    settings, store = site
    run_pass(settings, store, NOW, stages=STAGES)
    toml = settings.root / "dispatch.toml"
    toml.write_text(toml.read_text() + "\n[social.x]\n", encoding="utf-8")
    settings = reload(settings)
    write_article(settings.root, "four.md", front("Four", "2026-11-02T09:30:00"), BODY)
    # X appears in the same pass as a new article: that article, like the
    # three before it, predates X for dispatch.
    added = run_pass(settings, store, NOW + timedelta(hours=1), stages=STAGES)
    assert added.stages[0].summary.startswith("queued 2 (x: first pass")
    assert sorted((r["slug"], r["network"]) for r in q.posts_for(store)) == [
        ("four", "bluesky"), ("four", "mastodon")]
    write_article(settings.root, "five.md", front("Five", "2026-11-02T11:30:00"), BODY)
    run_pass(settings, store, NOW + timedelta(hours=3), stages=STAGES)
    assert sorted(r["network"] for r in q.posts_for(store, "five")) == ["bluesky", "mastodon", "x"]
    assert [r["network"] for r in q.posts_for(store, "one")] == []


def test_queue_by_hand_queues_exactly_once(site: tuple[Settings, Store]) -> None:
    settings, store = site
    run_pass(settings, store, NOW, stages=STAGES)
    (one,) = [a for a in load_site(settings).articles if a.slug == "one"]
    first = queue_by_hand(store, settings, one, NOW, ["mastodon"])
    assert [(o.network, o.outcome) for o in first] == [("mastodon", "queued")]
    again = queue_by_hand(store, settings, one, NOW + timedelta(minutes=1))
    assert [(o.network, o.outcome) for o in again] == [
        ("mastodon", "already queued"), ("bluesky", "queued")]
    run_pass(settings, store, NOW + timedelta(hours=1), stages=STAGES)
    third = queue_by_hand(store, settings, one, NOW + timedelta(hours=2))
    assert [o.outcome for o in third] == ["already sent", "already sent"]
    assert len(q.posts_for(store, "one")) == 2 and q.status_counts(store) == {"sent": 2}
    assert captured(settings) == ["bluesky/one.json", "mastodon/one.json"]


def test_a_post_that_cannot_be_written_is_kept_and_written_again_after_a_fix(
        site: tuple[Settings, Store]) -> None:
    settings, store = site
    toml = settings.root / "dispatch.toml"
    good = toml.read_text()
    toml.write_text(good.replace("[social.bluesky]\n", "[social.bluesky]\n" + TOO_SHORT))
    settings = reload(settings)
    run_pass(settings, store, NOW, stages=STAGES)
    write_article(settings.root, "four.md", front("Four", "2026-11-02T09:30:00"), BODY)
    failed = run_pass(settings, store, NOW + timedelta(hours=1), stages=STAGES)
    stage = failed.stages[0]
    assert stage.summary.startswith("queued 1, sent 1")
    assert [p.field for p in stage.problems] == ["social.bluesky"]
    assert "the link alone is" in stage.problems[0].message
    rows = {r["network"]: r for r in q.posts_for(store, "four")}
    assert rows["bluesky"]["status"] == "failed"
    assert "over the limit of 40" in rows["bluesky"]["last_error"]
    assert q.unfit_of(rows["bluesky"]) is not None

    # Nothing changed: nothing is tried again, nothing said again.
    quiet = run_pass(settings, store, NOW + timedelta(hours=2), stages=STAGES)
    assert quiet.stages[0].problems == () and quiet.stages[0].summary.startswith("queued 0")
    # By hand, while the setting is still wrong: said, still failed.
    (four,) = [a for a in load_site(settings).articles if a.slug == "four"]
    (still,) = queue_by_hand(store, settings, four, NOW + timedelta(hours=2), ["bluesky"])
    assert still.outcome == "could not be written" and "over the limit" in still.detail

    toml.write_text(good.replace("[social.bluesky]\n", "[social.bluesky]\n"
                                 + TOO_SHORT.replace("limit = 40\n", "")))  # the fix
    settings = reload(settings)
    fixed = run_pass(settings, store, NOW + timedelta(hours=3), stages=STAGES)
    assert fixed.stages[0].summary.startswith("queued 1, sent 1")
    rows = {r["network"]: r for r in q.posts_for(store, "four")}
    assert rows["bluesky"]["status"] == "sent" and rows["bluesky"]["last_error"] is None
    assert "bluesky/four.json" in captured(settings)


def test_the_scheduled_route_keeps_a_post_that_cannot_be_written(
        site: tuple[Settings, Store]) -> None:
    settings, store = site
    toml = settings.root / "dispatch.toml"
    toml.write_text(toml.read_text().replace("[social.bluesky]\n",
                                             "[social.bluesky]\n" + TOO_SHORT))
    settings = reload(settings)
    articles = [a for a in load_site(settings).articles if a.slug == "one"]
    report = queue_social(store, settings, articles, NOW)
    assert (report.queued, report.unfit) == (1, 1)
    assert "1 could not be written" in report.summary
    assert queue_social(store, settings, articles, NOW).unfit == 0  # recorded once
    toml.write_text(toml.read_text().replace("limit = 40\n", ""))
    rows = {r["network"]: r["status"] for r in q.posts_for(store, "one")}
    assert rows == {"mastodon": "queued", "bluesky": "failed"}
    run_pass(reload(settings), store, NOW + timedelta(hours=1), stages=STAGES)
    assert q.status_counts(store) == {"sent": 2}


def test_an_upgraded_database_keeps_announcing(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A network with posts from before the baselines existed keeps its history."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    # The database as it was before the baselines (later migrations may follow it).
    before = migrations.MIGRATIONS[:[name for name, _ in migrations.MIGRATIONS]
                                   .index("social_0002_network_baselines")]
    monkeypatch.setattr(migrations, "MIGRATIONS", before)
    old = open_store(url)
    with old.write() as conn:
        conn.execute(insert(social_posts), [
            {"slug": f"a{d}", "network": "mastodon", "text_hash": "h", "payload": "{}",
             "status": "sent", "attempts": 1, "created_at": NOW - timedelta(days=d),
             "available_at": NOW} for d in (3, 9)])
    old.dispose()
    monkeypatch.undo()
    store = open_store(url)
    with store.read() as conn:
        rows = conn.execute(select(social_networks.c.name, social_networks.c.first_seen_at)).all()
    store.dispose()
    assert [tuple(r) for r in rows] == [("mastodon", NOW - timedelta(days=9))]
