"""The social outbox on a real SQLite file and the real PostgreSQL:
queued once, leased, fenced, and never re-posted on edit."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.sitekit import build_site

from dispatch.config import Settings, load_settings
from dispatch.content.loader import load_site
from dispatch.pipeline import run_pass
from dispatch.schedule.coverage import social_schedules
from dispatch.social import compose_post, deliver_social_posts, queue_social_posts
from dispatch.social import queue as q
from dispatch.social.stage import social_stage
from dispatch.store.engine import Store
from sitekit import write_article

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SOCIAL = """
[social]
hashtags = 2

[social.mastodon]
transport = "capture"

[social.bluesky]
transport = "capture"
"""
FRONT = """\
    title: Sleep and blood pressure
    date: 2026-10-06T07:00:00
    tags: [sleep, blood pressure]
"""
BODY = "Intro.\n\n## Key takeaway\n\nSleep seven hours. Keep a fixed wake-up time.\n"


@pytest.fixture
def site(site_root: Path, database_url: str) -> Iterator[tuple[Settings, Store]]:
    settings, store = build_site(site_root, toml=SOCIAL, articles={"sleep.md": (FRONT, BODY)},
                                 database_url=database_url)
    # Both networks were configured before the article was published, so a
    # pass announces it (tests/test_social_baseline.py covers a fresh site).
    q.remember_networks(store, ["mastodon", "bluesky"], NOW - timedelta(days=60))
    yield settings, store
    store.dispose()


def test_queued_once_per_article_and_network(site: tuple[Settings, Store]) -> None:
    settings, store = site
    articles = load_site(settings).articles
    assert queue_social_posts(store, settings, articles, NOW) == 2
    assert queue_social_posts(store, settings, articles, NOW + timedelta(hours=1)) == 0
    assert queue_social_posts(store, settings, articles, NOW, networks=["bluesky"]) == 0
    rows = q.posts_for(store, "sleep")
    assert sorted(r["network"] for r in rows) == ["bluesky", "mastodon"]
    assert all(r["status"] == "queued" and r["attempts"] == 0 for r in rows)


def test_pass_captures_posts_and_an_edit_never_posts_again(
        site: tuple[Settings, Store]) -> None:
    settings, store = site
    stages = [("social", social_stage)]
    report = run_pass(settings, store, NOW, stages=stages)
    assert report.new == ("sleep",)
    assert report.stages[0].summary.startswith("queued 2, sent 2")
    captured = settings.state_dir / "social" / "mastodon" / "sleep.json"
    first = json.loads(captured.read_text(encoding="utf-8"))
    assert first["text"].startswith("Sleep seven hours. Keep a fixed wake-up time.\n\n")
    assert first["idempotency_key"].startswith("dispatch:sleep:mastodon:")
    bluesky = json.loads((captured.parent.parent / "bluesky" / "sleep.json").read_text())
    assert bluesky["facets"][0]["features"][0]["uri"] == bluesky["url"]

    # Fix a typo in the takeaway: the article changes, nothing is posted again.
    write_article(settings.root, "sleep.md", FRONT, BODY.replace("seven", "7"))
    again = run_pass(settings, store, NOW + timedelta(hours=2), stages=stages)
    assert again.changed == ("sleep",) and again.new == ()
    assert again.stages[0].summary.startswith("queued 0, sent 0")
    assert json.loads(captured.read_text(encoding="utf-8")) == first
    assert q.status_counts(store) == {"sent": 2}


def test_lease_claim_expiry_and_fenced_ack(site: tuple[Settings, Store]) -> None:
    settings, store = site
    queue_social_posts(store, settings, load_site(settings).articles, NOW)
    lease = timedelta(minutes=5)
    a = q.claim(store, "worker-a", NOW, lease, 10, ["mastodon", "bluesky"])
    assert [c.network for c in a] == ["mastodon", "bluesky"] and a[0].attempts == 1
    assert q.claim(store, "worker-b", NOW + timedelta(minutes=1), lease, 10,
                   ["mastodon", "bluesky"]) == []
    # Worker A stalls past its lease; B reclaims and A can no longer ack.
    later = NOW + timedelta(minutes=6)
    b = q.claim(store, "worker-b", later, lease, 1, ["mastodon", "bluesky"])
    assert len(b) == 1 and b[0].id == a[0].id and b[0].attempts == 2
    assert b[0].idempotency_key == a[0].idempotency_key  # same key: the network dedupes
    assert not q.mark_sent(store, a[0].id, "worker-a", later, "1", None)
    assert q.mark_sent(store, b[0].id, "worker-b", later, "1", "https://m.test/1")
    assert q.mark_sent(store, a[1].id, "worker-a", later, "2", None)  # A still owns this one
    assert q.status_counts(store) == {"sent": 2}


def test_retry_waits_until_available_and_failure_is_final(site: tuple[Settings, Store]) -> None:
    settings, store = site
    queue_social_posts(store, settings, load_site(settings).articles, NOW, networks=["mastodon"])
    lease = timedelta(minutes=5)
    (c,) = q.claim(store, "w", NOW, lease, 10, ["mastodon"])
    assert q.mark_retry(store, c.id, "w", NOW + timedelta(seconds=120), "HTTP 429")
    assert q.claim(store, "w", NOW + timedelta(seconds=119), lease, 10, ["mastodon"]) == []
    (c2,) = q.claim(store, "w", NOW + timedelta(seconds=120), lease, 10, ["mastodon"])
    assert c2.attempts == 2
    assert q.mark_failed(store, c2.id, "w", NOW, "HTTP 422: Validation failed")
    assert q.claim(store, "w", NOW + timedelta(days=1), lease, 10, ["mastodon"]) == []
    (row,) = q.posts_for(store, "sleep")
    assert row["status"] == "failed" and row["last_error"] == "HTTP 422: Validation failed"


def test_counts_reconcile_and_unconfigured_networks_wait(site: tuple[Settings, Store]) -> None:
    settings, store = site
    queue_social_posts(store, settings, load_site(settings).articles, NOW)
    # Only mastodon has a transport in this claim: bluesky's row stays queued.
    claimed = q.claim(store, "w", NOW, timedelta(minutes=5), 10, ["mastodon"])
    assert [c.network for c in claimed] == ["mastodon"]
    assert q.release(store, claimed[0].id, "w")
    counts = q.status_counts(store)
    assert counts == {"queued": 2} and sum(counts.values()) == len(q.posts_for(store))
    report = deliver_social_posts(store, settings, NOW)
    assert (report.claimed, report.sent, report.failed) == (2, 2, 0)
    assert {r["attempts"] for r in q.posts_for(store)} == {1}


def test_on_publish_off_leaves_queueing_to_the_scheduler(site: tuple[Settings, Store]) -> None:
    settings, store = site
    toml = settings.root / "dispatch.toml"
    toml.write_text(toml.read_text().replace("hashtags = 2", "hashtags = 2\non_publish = false"))
    settings = load_settings(settings.root, environ={"DISPATCH_DATABASE_URL":
                                                     settings.database_url})
    stages = [("social", social_stage)]
    first = run_pass(settings, store, NOW, stages=stages)
    assert first.new == ("sleep",) and first.stages[0].summary.startswith("queued 0, sent 0")
    # An on-publish schedule fires later and queues; the next pass delivers.
    later = NOW + timedelta(hours=2)
    assert queue_social_posts(store, settings, load_site(settings).articles, later) == 2
    second = run_pass(settings, store, later, stages=stages)
    assert second.stages[0].summary.startswith("queued 0, sent 2")


def test_concurrent_workers_never_claim_the_same_post(site: tuple[Settings, Store]) -> None:
    settings, store = site
    (article,) = load_site(settings).articles
    posts = [replace(compose_post(settings, article, "mastodon"), slug=f"a{i}")
             for i in range(40)]
    assert q.enqueue(store, posts, NOW) == 40
    claimed: dict[str, list[int]] = {"w1": [], "w2": []}

    def work(owner: str) -> None:
        while batch := q.claim(store, owner, NOW, timedelta(minutes=5), 3, ["mastodon"]):
            for post in batch:
                claimed[owner].append(post.id)
                assert q.mark_sent(store, post.id, owner, NOW, None, None)

    threads = [threading.Thread(target=work, args=(name,)) for name in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    everything = claimed["w1"] + claimed["w2"]
    assert sorted(everything) == sorted(set(everything)) and len(everything) == 40
    assert q.status_counts(store) == {"sent": 40}


SOCIAL_SCHEDULE = """\
schedules:
  - id: social-new-articles
    kind: social
    on_publish: true
    delay: 30m
    networks: [mastodon]
"""


def test_auto_leaves_networks_with_a_social_schedule_to_the_scheduler(
        site: tuple[Settings, Store]) -> None:
    settings, store = site
    (settings.root / "schedules.yaml").write_text(SOCIAL_SCHEDULE, encoding="utf-8")
    report = run_pass(settings, store, NOW, stages=[("social", social_stage)],
                      social_schedules=lambda: social_schedules(settings))
    assert report.stages[0].summary.startswith("queued 1, sent 1")
    assert [r["network"] for r in q.posts_for(store)] == ["bluesky"]


def test_auto_with_a_broken_schedules_file_holds_off_and_says_so(
        site: tuple[Settings, Store]) -> None:
    settings, store = site
    (settings.root / "schedules.yaml").write_text(
        SOCIAL_SCHEDULE.replace("delay: 30m", "delay: soon"), encoding="utf-8")
    report = run_pass(settings, store, NOW, stages=[("social", social_stage)],
                      social_schedules=lambda: social_schedules(settings))
    stage = report.stages[0]
    assert stage.summary.startswith("queued 0") and q.posts_for(store) == []
    assert "left to the scheduler" in str(stage.problems[0]) and not stage.problems[0].is_error


def test_a_paused_social_schedule_still_holds_its_networks(
        site: tuple[Settings, Store]) -> None:
    # Paused means nothing goes out, not "post at once without the delay".
    settings, store = site
    (settings.root / "schedules.yaml").write_text(
        SOCIAL_SCHEDULE + "    enabled: false\n", encoding="utf-8")
    report = run_pass(settings, store, NOW, stages=[("social", social_stage)],
                      social_schedules=lambda: social_schedules(settings))
    assert report.stages[0].summary.startswith("queued 1, sent 1")
    assert [r["network"] for r in q.posts_for(store)] == ["bluesky"]


def test_a_broken_schedules_file_defers_to_the_last_good_copy(
        site: tuple[Settings, Store]) -> None:
    # The scheduler runs the last good schedules while the file has a
    # mistake; so does the choice of what is posted at once.
    from dispatch.schedule.sitefile import last_good_path

    settings, store = site
    last_good_path(settings).parent.mkdir(parents=True, exist_ok=True)
    last_good_path(settings).write_text(SOCIAL_SCHEDULE, encoding="utf-8")
    (settings.root / "schedules.yaml").write_text(
        SOCIAL_SCHEDULE.replace("delay: 30m", "delay: soon"), encoding="utf-8")
    report = run_pass(settings, store, NOW, stages=[("social", social_stage)],
                      social_schedules=lambda: social_schedules(settings))
    assert report.stages[0].summary.startswith("queued 1, sent 1")
    assert [r["network"] for r in q.posts_for(store)] == ["bluesky"]
