"""``update_feeds`` writes exactly what a full build writes, rendering less.

The property test drives one output folder through random edit sequences with
``update_feeds`` and compares it, after every step, with a full build into a
fresh folder. The unit tests pin down when the shortcut is taken and when it
must fall back to a full build.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Collection, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from dispatch.config import Settings, SiteSettings
from dispatch.feeds import build as feeds_build
from dispatch.feeds import update_feeds
from dispatch.feeds.build import MANIFEST
from dispatch.feeds.build import build_feeds as full_build  # before any monkeypatching
from dispatch.models import Article
from dispatch.store import open_store
from dispatch.store.articles import changed_since, record_publications
from dispatch.store.engine import Store

LONDON = ZoneInfo("Europe/London")
START = datetime(2026, 3, 1, 8, 0, tzinfo=LONDON)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CATEGORIES = ("Sleep", "Heart", "Food", None)


def site_settings(entries: int = 3) -> Settings:
    return Settings(root=Path("."), site=SiteSettings(
        title="Journal", url="https://journal.example", timezone="Europe/London"),
        raw={"feeds": {"entries": entries}})


def article(n: int, *, day: int | None = None, category: str | None = "Sleep",
            status: str = "published", title: str | None = None) -> Article:
    made = Article(
        slug=f"a{n:03d}", source=f"content/a{n:03d}.md", title=title or f"Article {n}",
        date=START + timedelta(days=n if day is None else day),
        summary=f"Summary {n}.", body_markdown="", body_html=f"<p>Body {n}.</p>",
        sources_html="", sources=(), url=f"https://journal.example/a{n:03d}/",
        content_hash="", reading_minutes=1, excerpt="", category=category, tags=("t",),
        author="Writer", status=status)
    return rehash(made)


def rehash(a: Article) -> Article:
    """A source digest that follows every field, as a file's digest would."""
    key = repr((a.title, a.date, a.category, a.status, a.body_html))
    return dataclasses.replace(a, content_hash=hashlib.sha256(key.encode()).hexdigest())


def feed_files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes()
            for p in sorted(out.rglob("*")) if p.is_file() and p.name != MANIFEST}


class Site:
    """Articles plus what a pipeline would report as changed since a time."""

    def __init__(self, articles: list[Article]) -> None:
        self.by_slug = {a.slug: a for a in articles}
        self.deleted: dict[str, Article] = {}
        self.touched: set[str] = set()

    @property
    def articles(self) -> list[Article]:
        return sorted(self.by_slug.values(), key=lambda a: (a.date, a.slug))

    def put(self, a: Article) -> None:
        self.by_slug[a.slug] = rehash(a)
        self.touched.add(a.slug)

    def delete(self, slug: str) -> None:
        # A deleted file is not reported by anyone: the manifest must notice.
        gone = self.by_slug.pop(slug, None)
        if gone is not None:
            self.deleted[slug] = gone

    def restore(self, slug: str) -> None:
        """The very same file back (same digest): a restore from backup."""
        if slug in self.deleted:
            self.by_slug[slug] = self.deleted.pop(slug)

    def changed_since(self, _since: datetime) -> Collection[str]:
        return set(self.touched)

    def update(self, settings: Settings, now: datetime, out: Path) -> None:
        update_feeds(settings, self.articles, self.by_slug, self.changed_since, now, out)
        self.touched.clear()


class StoreSite(Site):
    """The pipeline's way: each pass records what is published in a real
    store, and the store says what changed since the feeds were built."""

    def __init__(self, articles: list[Article], store: Store) -> None:
        super().__init__(articles)
        self.store = store

    def update(self, settings: Settings, now: datetime, out: Path) -> None:
        record_publications(self.store, self.articles, now)
        update_feeds(settings, self.articles, self.by_slug,
                     lambda since: changed_since(self.store, since), now, out)


@pytest.fixture
def full_builds(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts the fallbacks of update_feeds to a full build."""
    calls: list[int] = []
    real = feeds_build.build_feeds

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(feeds_build, "build_feeds", counting)
    yield calls


def prepared(tmp_path: Path, count: int = 12) -> tuple[Site, Settings, Path]:
    site = Site([article(n, category=CATEGORIES[n % 3]) for n in range(count)])
    settings = site_settings()
    out = tmp_path / "out"
    full_build(settings, site.articles, NOW, out)
    return site, settings, out


def assert_same_as_full_build(site: Site, settings: Settings, now: datetime, out: Path,
                              fresh: Path) -> None:
    full_build(settings, site.articles, now, fresh)
    assert feed_files(out) == feed_files(fresh)


def test_an_edit_renders_only_its_feeds_without_a_full_build(
        tmp_path: Path, full_builds: list[int]) -> None:
    site, settings, out = prepared(tmp_path)
    newest = site.by_slug["a011"]  # category Food (11 % 3 == 2), in the site-wide feed
    site.put(dataclasses.replace(newest, title="Corrected"))
    report = update_feeds(settings, site.articles, site.by_slug, site.changed_since, NOW, out)
    assert full_builds == []
    assert report.rendered == 2
    assert {p.relative_to(out).parent.as_posix() for p in report.written} == {
        ".", "category/food"}
    assert_same_as_full_build(site, settings, NOW, out, tmp_path / "fresh")


def test_a_new_article_too_old_for_any_feed_renders_nothing(
        tmp_path: Path, full_builds: list[int]) -> None:
    site, settings, out = prepared(tmp_path)
    site.put(article(50, day=-30, category="Heart"))
    report = update_feeds(settings, site.articles, site.by_slug, site.changed_since, NOW, out)
    assert (report.rendered, report.written, full_builds) == (0, (), [])


def test_nothing_changed_writes_nothing(tmp_path: Path, full_builds: list[int]) -> None:
    site, settings, out = prepared(tmp_path)
    before = (out / MANIFEST).stat().st_mtime_ns
    report = update_feeds(settings, site.articles, site.by_slug, site.changed_since,
                          NOW + timedelta(hours=1), out)
    assert (report.written, full_builds) == ((), [])
    assert report.unchanged == 3 * report.feeds == 12
    assert (out / MANIFEST).stat().st_mtime_ns == before  # not even the manifest


@pytest.mark.parametrize("change", ["deleted", "draft", "recategorised", "backdated"])
def test_an_article_leaving_a_full_feed_falls_back_to_a_full_build(
        tmp_path: Path, full_builds: list[int], change: str) -> None:
    site, settings, out = prepared(tmp_path)
    newest = site.by_slug["a011"]
    if change == "deleted":
        site.delete("a011")  # reported by nobody
    elif change == "draft":
        site.put(dataclasses.replace(newest, status="draft"))
    elif change == "recategorised":
        site.put(dataclasses.replace(newest, category="Sleep"))
    else:
        site.put(dataclasses.replace(newest, date=START - timedelta(days=40)))
    site.update(settings, NOW, out)
    assert full_builds == [1]
    assert_same_as_full_build(site, settings, NOW, out, tmp_path / "fresh")
    assert "a011" not in (out / "category/food/feed.xml").read_text()


def test_a_silent_edit_of_an_article_in_a_feed_is_noticed(
        tmp_path: Path, full_builds: list[int]) -> None:
    site, settings, out = prepared(tmp_path)
    site.put(dataclasses.replace(site.by_slug["a010"], title="Edited quietly"))
    site.touched.clear()  # whoever reports changes forgot this one
    site.update(settings, NOW, out)
    assert full_builds == []
    assert "Edited quietly" in (out / "category/heart/feed.xml").read_text()
    assert_same_as_full_build(site, settings, NOW, out, tmp_path / "fresh")


def test_a_scheduled_article_falling_due_unreported_forces_a_full_build(
        tmp_path: Path, full_builds: list[int]) -> None:
    site = Site([article(n, category="Sleep") for n in range(4)]
                + [article(9, day=200, category="Sleep")])  # due after NOW
    settings = site_settings()
    out = tmp_path / "out"
    full_build(settings, site.articles, NOW, out)
    later = NOW + timedelta(days=200)
    site.update(settings, later, out)  # nobody says a009 is now published
    assert full_builds == [1]
    assert "Article 9" in (out / "feed.xml").read_text()


def test_feed_files_deleted_or_overwritten_by_hand_are_repaired(
        tmp_path: Path, full_builds: list[int]) -> None:
    site, settings, out = prepared(tmp_path)
    (out / "atom.xml").unlink()
    (out / "category/food/feed.json").write_text("garbage", encoding="utf-8")
    site.update(settings, NOW, out)
    assert full_builds == [1]
    assert_same_as_full_build(site, settings, NOW, out, tmp_path / "fresh")


@pytest.mark.parametrize("what", ["settings", "time backwards", "new category", "manifest"])
def test_what_the_manifest_cannot_prove_falls_back(
        tmp_path: Path, full_builds: list[int], what: str) -> None:
    site, settings, out = prepared(tmp_path)
    now = NOW
    if what == "settings":
        settings = dataclasses.replace(settings, site=settings.site.model_copy(
            update={"title": "Renamed"}))
    elif what == "time backwards":
        now = NOW - timedelta(days=1)
    elif what == "new category":
        site.put(article(60, day=90, category="Brand new"))
    else:
        (out / MANIFEST).write_text("{not json", encoding="utf-8")
    site.update(settings, now, out)
    assert full_builds == [1]
    assert_same_as_full_build(site, settings, now, out, tmp_path / "fresh")


# A step of an edit sequence: (operation, article number, day offset, category index).
OPS = st.tuples(
    # Moves are listed twice: most ways to get a feed wrong start with one.
    st.sampled_from(["edit", "new", "move", "move", "recategorise", "draft", "publish",
                     "delete", "restore", "later"]),
    st.integers(0, 13),
    # Mostly near the existing articles (days 0-5, so moves cross feed floors),
    # sometimes after NOW (day 92): scheduled.
    st.one_of(st.integers(-3, 8), st.integers(85, 130)),
    st.integers(0, len(CATEGORIES) - 1))


@hsettings(max_examples=80, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
@given(steps=st.lists(OPS, min_size=1, max_size=12), entries=st.integers(1, 4))
def test_updates_match_full_builds_over_random_edits(
        tmp_path_factory: pytest.TempPathFactory,
        steps: list[tuple[str, int, int, int]], entries: int) -> None:
    base = tmp_path_factory.mktemp("incremental")
    store = open_store(f"sqlite:///{base / 'state.db'}")
    # Same-day dates on purpose: ties are ordered by slug.
    site = StoreSite([article(n, day=n // 2, category=CATEGORIES[n % len(CATEGORIES)])
                      for n in range(10)], store)
    settings = site_settings(entries)
    out = base / "out"
    now = NOW
    record_publications(store, site.articles, now)
    full_build(settings, site.articles, now, out)
    for i, (op, n, day, cat) in enumerate(steps):
        slug = f"a{n:03d}"
        current = site.by_slug.get(slug)
        if op == "restore":
            site.restore(slug)
        elif op == "new" or current is None:
            site.put(article(n, day=day, category=CATEGORIES[cat]))
        elif op == "edit":
            site.put(dataclasses.replace(current, title=f"{current.title}!"))
        elif op == "move":  # possibly into the future: scheduled
            site.put(dataclasses.replace(current, date=START + timedelta(days=day)))
        elif op == "recategorise":
            site.put(dataclasses.replace(current, category=CATEGORIES[cat]))
        elif op == "draft":
            site.put(dataclasses.replace(current, status="draft"))
        elif op == "publish":
            site.put(dataclasses.replace(current, status="published"))
        elif op == "delete":
            site.delete(slug)
        else:  # time passes and scheduled articles fall due
            now += timedelta(days=day % 40 + 1)
        site.update(settings, now, out)
        assert_same_as_full_build(site, settings, now, out, base / f"fresh{i}")
    store.dispose()
