"""The feeds stage in a pass, ``dispatch build`` and ``dispatch check``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from click.testing import CliRunner

from dispatch.cli import main
from dispatch.config import load_settings
from dispatch.content.loader import load_site
from dispatch.errors import ConfigError
from dispatch.feeds.build import build_feeds
from dispatch.feeds.stage import feeds_stage
from dispatch.pipeline import default_stages, run_pass
from dispatch.store.engine import Store, open_store
from feeds_site import ARTICLES, CONFIG, NOW, write_site

STAGES = [("feeds", feeds_stage)]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, Store]]:
    root = write_site(tmp_path / "site")
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        yield root, store
    finally:
        store.dispose()


def feed_stamps(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns
            for p in (root / "public").rglob("*") if p.is_file() and not p.name.startswith(".")}


def feeds_report(root: Path, store: Store, now: datetime) -> str:
    report = run_pass(load_settings(root, environ={}), store, now, STAGES)
    (stage,) = report.stages
    assert not stage.failed, stage.summary
    return stage.summary


def test_default_stages_include_feeds() -> None:
    assert "feeds" in [name for name, _ in default_stages()]


def test_pass_rebuilds_only_on_new_or_changed_articles(site: tuple[Path, Store]) -> None:
    root, store = site
    assert "12 file(s) written" in feeds_report(root, store, NOW)
    stamps = feed_stamps(root)

    # Nothing new, nothing changed: the stage does not touch the feeds.
    assert "left as they are" in feeds_report(root, store, NOW)
    assert feed_stamps(root) == stamps

    # Editing a draft is not a published change.
    draft = root / "content" / "draft.md"
    draft.write_text(ARTICLES["draft.md"] + "\nMore draft.\n", encoding="utf-8")
    assert "left as they are" in feeds_report(root, store, NOW)

    # A published article changed: its feeds are rewritten, the others are not.
    cafe = root / "content" / "cafe.md"
    cafe.write_text(ARTICLES["cafe.md"] + "\nA correction.\n", encoding="utf-8")
    assert "6 file(s) written" in feeds_report(root, store, NOW)
    after = feed_stamps(root)
    rewritten = {name for name in stamps if after[name] != stamps[name]}
    assert rewritten == {f"public/{n}" for n in ("feed.xml", "atom.xml", "feed.json")} | {
        f"public/category/nutrition/{n}" for n in ("feed.xml", "atom.xml", "feed.json")}


def test_deleted_or_drafted_article_leaves_the_feeds(site: tuple[Path, Store]) -> None:
    # Nobody reports a deleted file as new or changed; the feeds notice anyway.
    root, store = site
    feeds_report(root, store, NOW)
    (root / "content" / "cafe.md").unlink()
    assert "written" in feeds_report(root, store, NOW + timedelta(hours=1))
    assert "Café" not in (root / "public" / "feed.xml").read_text(encoding="utf-8")
    assert not (root / "public" / "category" / "nutrition").exists()
    emoji = root / "content" / "emoji.md"
    emoji.write_text(emoji.read_text(encoding="utf-8").replace(
        "---\n", "---\nstatus: draft\n", 1), encoding="utf-8")
    feeds_report(root, store, NOW + timedelta(hours=2))
    atom = feedparser.parse((root / "public" / "atom.xml").read_bytes())
    titles = [e.title for e in atom.entries]
    assert titles == ["Salt & sugar: <why> it matters"]


def test_an_article_that_comes_back_is_back_in_the_feeds(site: tuple[Path, Store],
                                                         tmp_path: Path) -> None:
    # Drafted (or deleted) and then restored as the very same file: the store
    # marked it withdrawn in between, so its return counts as a change.
    root, store = site
    feeds_report(root, store, NOW)
    cafe = root / "content" / "cafe.md"
    original = cafe.read_text(encoding="utf-8")
    cafe.write_text(original.replace("---\n", "---\nstatus: draft\n", 1), encoding="utf-8")
    feeds_report(root, store, NOW + timedelta(hours=1))
    assert not (root / "public" / "category" / "nutrition").exists()
    cafe.write_text(original, encoding="utf-8")
    assert "written" in feeds_report(root, store, NOW + timedelta(hours=2))
    cafe.unlink()
    feeds_report(root, store, NOW + timedelta(hours=3))
    cafe.write_text(original, encoding="utf-8")
    feeds_report(root, store, NOW + timedelta(hours=4))
    settings = load_settings(root, environ={})
    fresh = tmp_path / "fresh"
    build_feeds(settings, load_site(settings).articles, NOW + timedelta(hours=4), fresh)
    built = {p.relative_to(fresh): p.read_bytes() for p in fresh.rglob("*.*")
             if not p.name.startswith(".")}
    assert built and all((root / "public" / name).read_bytes() == data
                         for name, data in built.items())
    assert "Café" in (root / "public" / "category" / "nutrition" / "feed.xml").read_text(
        encoding="utf-8")


def test_an_article_recorded_by_a_pass_without_feeds_still_reaches_them(
        site: tuple[Path, Store]) -> None:
    # A pass that records an article and then dies (or runs without the feeds
    # stage) must not make the feeds miss it: they ask the store for what
    # changed since they were last built, not for what this pass saw first.
    root, store = site
    feeds_report(root, store, NOW)
    (root / "content" / "late.md").write_text(
        "---\ntitle: Late news\ndate: 2026-11-30T09:00:00\ncategory: Nutrition\n---\n\nHi.\n",
        encoding="utf-8")
    report = run_pass(load_settings(root, environ={}), store, NOW + timedelta(hours=1), [])
    assert report.new == ("late",)
    assert "written" in feeds_report(root, store, NOW + timedelta(hours=2))
    d = feedparser.parse((root / "public" / "category" / "nutrition" / "feed.xml").read_bytes())
    assert d.entries[0].title == "Late news"


def test_future_article_appears_when_its_time_comes(site: tuple[Path, Store]) -> None:
    root, store = site
    feeds_report(root, store, NOW)
    assert "left as they are" in feeds_report(root, store, NOW)
    later = datetime(2027, 6, 2, tzinfo=UTC)
    assert "written" in feeds_report(root, store, later)
    d = feedparser.parse((root / "public" / "feed.xml").read_bytes())
    assert d.entries[0].title == "Tomorrow's news"


def test_missing_output_is_rebuilt(site: tuple[Path, Store]) -> None:
    root, store = site
    feeds_report(root, store, NOW)
    shutil.rmtree(root / "public")
    assert "12 file(s) written" in feeds_report(root, store, NOW)


def test_bad_feeds_config_is_refused_before_any_pass(site: tuple[Path, Store]) -> None:
    # A bad [feeds] table stops every command before it does anything (it
    # once failed only the feeds stage, after the other stages had acted).
    root, _store = site
    toml = root / "dispatch.toml"
    toml.write_text(toml.read_text().replace("entries = 20", "entries = 0"), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(root, environ={})
    assert any(p.field == "feeds.entries" and p.line is not None
               for p in caught.value.problems)


def test_build_command(tmp_path: Path) -> None:
    root = write_site(tmp_path / "site")
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(main, ["build", "--root", str(root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "4 feed(s): 12 file(s) written" in result.output
    assert (out / "category" / "infections" / "feed.json").is_file()
    again = runner.invoke(main, ["build", "--root", str(root), "--out", str(out)])
    assert "0 file(s) written, 12 unchanged" in again.output
    default = runner.invoke(main, ["build", "--root", str(root)])
    assert default.exit_code == 0 and (root / "public" / "atom.xml").is_file()


def test_build_command_reports_bad_config_cleanly(tmp_path: Path) -> None:
    root = write_site(tmp_path / "site")
    toml = root / "dispatch.toml"
    toml.write_text(toml.read_text().replace('hub = "https://hub.example.com/"', 'hub = "nope"'),
                    encoding="utf-8")
    result = CliRunner().invoke(main, ["build", "--root", str(root)])
    assert result.exit_code == 1
    line = toml.read_text().splitlines().index('hub = "nope"') + 1
    assert (f"dispatch.toml:{line}: feeds.hub: 'nope' is not allowed (expected an absolute URL"
            in result.output)
    assert "Traceback" not in result.output


def test_check_reports_control_characters_and_category_clashes(tmp_path: Path) -> None:
    articles = dict(ARTICLES)
    articles["bell.md"] = ('---\ntitle: Bell\ndate: 2026-02-01\nsummary: "ding\\x07dong"\n'
                           'category: heart-health\n---\n\nBody.\n')
    root = write_site(tmp_path / "site", articles, CONFIG + 'colour = "blue"\n')
    refused = CliRunner().invoke(main, ["check", "--root", str(root)])
    line = CONFIG.count("\n") + 1
    # An unknown key is an error now (it was a warning), so check stops at it.
    assert refused.exit_code == 1
    assert f"dispatch.toml:{line}: feeds.colour: unknown key 'colour'" in refused.output
    (root / "dispatch.toml").write_text(CONFIG, encoding="utf-8")
    result = CliRunner().invoke(main, ["check", "--root", str(root)])
    assert ("content/bell.md: summary: warning: control character U+0007 is not allowed in XML"
            in result.output)
    assert "share the feed category/heart-health/" in result.output
