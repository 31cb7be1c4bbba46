"""Feeds parsed by feedparser (a real client) and checked for what it cannot see."""

from __future__ import annotations

import calendar
import html
import re
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest

from dispatch.feeds import build_feeds
from feeds_site import ARTICLES, FEEDS_URL, NOW, SITE_URL, load, write_site

XML_FEEDS = {"feed.xml": "rss20", "atom.xml": "atom10"}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = write_site(tmp_path / "site")
    settings, articles = load(root)
    build_feeds(settings, articles, NOW)
    return root


def parse(path: Path) -> feedparser.FeedParserDict:
    return feedparser.parse(path.read_bytes())


def utc(parsed: object) -> datetime:
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", XML_FEEDS)
def test_feed_level_fields_round_trip(site: Path, name: str) -> None:
    d = parse(site / "public" / name)
    assert not d.bozo, d.get("bozo_exception")
    assert d.version == XML_FEEDS[name]
    assert d.feed.title == "Clinic Journal"
    assert d.feed.link == SITE_URL + "/"  # the site, never the feed or the hub
    assert d.feed.language == "en"
    links = {(link.rel, link.href) for link in d.feed.links}
    assert ("self", f"{FEEDS_URL}/{name}") in links  # the configured public URL
    assert ("hub", "https://hub.example.com/") in links
    assert d.feed.subtitle == "Notes & news"
    if name == "atom.xml":
        assert d.feed.icon == f"{SITE_URL}/favicon.png"
        assert d.feed.logo == f"{SITE_URL}/logo.png"
    else:
        assert d.feed.image.href == f"{SITE_URL}/logo.png"
    # The newest entry's updated time, never the build time.
    assert utc(d.feed.updated_parsed) == datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("name", XML_FEEDS)
def test_entries_round_trip(site: Path, name: str) -> None:
    d = parse(site / "public" / name)
    titles = [e.title for e in d.entries]
    # Newest first; drafts and future articles never appear.
    assert titles == ["Cold season 🤧 is here",
                      "Café culture and caffeine: naïve questions answered",
                      "Salt & sugar: <why> it matters"]
    salt = d.entries[2]
    assert salt.link == f"{SITE_URL}/ampersand/"
    assert salt.id == "tag:journal.example.org,2026-03-20:ampersand"
    assert salt.author == "Dr Amara Osei"
    assert [t.term for t in salt.tags] == ["Heart health", "salt", "sugar"]
    assert salt.enclosures[0].href == f"{SITE_URL}/images/salt.jpg"
    assert salt.enclosures[0].type == "image/jpeg"
    # RSS <description> is HTML, Atom <summary> here is text: both decode to the dek.
    assert html.unescape(salt.summary) == "Less salt < more salt? A & B."
    # Two zones and a DST change: GMT in March, BST in April, -05:00 in November.
    assert utc(salt.published_parsed) == datetime(2026, 3, 20, 9, 0, tzinfo=UTC)
    cafe = d.entries[1]
    assert utc(cafe.published_parsed) == datetime(2026, 4, 2, 7, 30, tzinfo=UTC)
    cold = d.entries[0]
    assert utc(cold.published_parsed) == datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
    assert cold.author == "Clinic Team"  # site author stands in


def test_updated_comes_from_frontmatter_in_atom(site: Path) -> None:
    cafe = parse(site / "public" / "atom.xml").entries[1]
    assert utc(cafe.updated_parsed) == datetime(2026, 4, 10, 9, 0, tzinfo=UTC)
    assert utc(cafe.published_parsed) == datetime(2026, 4, 2, 7, 30, tzinfo=UTC)


def test_rss_summary_is_the_dek_escaped_as_html(site: Path) -> None:
    raw = (site / "public" / "feed.xml").read_text(encoding="utf-8")
    # Plain text dek, HTML-escaped once for RSS <description>, then XML-escaped.
    assert "<description>Less salt &amp;lt; more salt? A &amp;amp; B.</description>" in raw
    atom = parse(site / "public" / "atom.xml").entries[2]
    assert atom.summary == "Less salt < more salt? A & B."


@pytest.mark.parametrize("name", XML_FEEDS)
def test_full_content_with_only_absolute_urls(site: Path, name: str) -> None:
    d = parse(site / "public" / name)
    for entry in d.entries:
        body = entry.content[0].value
        assert entry.content[0].type == "text/html"
        urls = re.findall(r'(?:href|src)="([^"]*)"', body)
        assert urls, body
        for url in urls:
            assert re.match(r"^(https?|mailto):", url), f"relative URL {url!r} in {entry.link}"
    salt = d.entries[2].content[0].value
    assert f'href="{SITE_URL}/guides/salt/"' in salt
    assert f'src="{SITE_URL}/img/chart.png"' in salt
    assert "https://example.com/study" in salt  # the sources come with the content


def test_raw_content_has_no_relative_urls_either(site: Path) -> None:
    # feedparser resolves relative URLs itself, so check the bytes too.
    for path in (site / "public").rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            text = path.read_text(encoding="utf-8")
            for url in re.findall(r'(?:href|src)=(?:\\"|&quot;|")([^"&\\]*)', text):
                assert url.startswith(("http://", "https://", "mailto:")), (path, url)


def test_category_feeds(site: Path) -> None:
    out = site / "public" / "category"
    assert sorted(p.name for p in out.iterdir()) == ["heart-health", "infections", "nutrition"]
    d = parse(out / "nutrition" / "atom.xml")
    assert not d.bozo
    assert [e.title for e in d.entries] == ["Café culture and caffeine: naïve questions answered"]
    assert d.feed.title == "Clinic Journal: Nutrition"
    assert {(lk.rel, lk.href) for lk in d.feed.links} >= {
        ("self", f"{FEEDS_URL}/category/nutrition/atom.xml")}
    rss = parse(out / "heart-health" / "feed.xml")
    assert rss.version == "rss20" and rss.feed.link == SITE_URL + "/"


def test_rebuild_is_byte_identical_and_writes_nothing(tmp_path: Path) -> None:
    root = write_site(tmp_path / "site")
    settings, articles = load(root)
    first = build_feeds(settings, articles, NOW)
    snapshot = {p: p.read_bytes() for p in (root / "public").rglob("*")
                if p.is_file() and not p.name.startswith(".")}
    stats = {p: p.stat().st_mtime_ns for p in snapshot}
    # A later clock, and a fresh render (no manifest): still the same bytes.
    (root / "public" / ".dispatch-feeds.json").unlink()
    second = build_feeds(settings, articles, datetime(2026, 12, 24, tzinfo=UTC))
    assert len(first.written) == 12
    assert second.written == () and second.unchanged == 12
    assert {p: p.read_bytes() for p in snapshot} == snapshot
    assert {p: p.stat().st_mtime_ns for p in snapshot} == stats
    # A second output folder built from scratch is identical too.
    other = build_feeds(settings, articles, NOW, tmp_path / "other")
    for path in other.written:
        assert path.read_bytes() == (root / "public" / path.relative_to(tmp_path / "other")
                                     ).read_bytes()


def test_ids_stable_across_an_edit(tmp_path: Path) -> None:
    root = write_site(tmp_path / "site")
    settings, articles = load(root)
    build_feeds(settings, articles, NOW)
    before = {e.link: e.id for e in parse(root / "public" / "atom.xml").entries}
    edited = ARTICLES["ampersand.md"].replace('title: "Salt & sugar: <why> it matters"',
                                              'title: "Salt and sugar, revisited"')
    edited = edited.replace("Eat less salt.", "Eat much less salt.\n\nupdated: yes")
    (root / "content" / "ampersand.md").write_text(
        edited.replace("image_alt: A salt shaker", "image_alt: A salt shaker\nupdated: "
                       "2026-05-01T10:00:00"), encoding="utf-8")
    settings, articles = load(root)
    report = build_feeds(settings, articles, NOW)
    after = parse(root / "public" / "atom.xml")
    assert {e.link: e.id for e in after.entries} == before
    assert "Salt and sugar, revisited" in [e.title for e in after.entries]
    # Only the feeds holding that article were rewritten: site-wide and its category.
    assert {p.relative_to(root / "public").parent.as_posix() for p in report.written} == {
        ".", "category/heart-health"}


def test_feed_entry_count_is_configurable(tmp_path: Path) -> None:
    articles = {f"a{n:02d}.md": f"---\ntitle: Article {n}\ndate: 2026-01-{n + 1:02d}\n"
                f"category: News\n---\n\nBody {n}.\n" for n in range(25)}
    config = f'[site]\ntitle = "T"\nurl = "{SITE_URL}"\n\n[feeds]\nentries = 5\n'
    root = write_site(tmp_path / "site", articles, config)
    settings, loaded = load(root)
    build_feeds(settings, loaded, NOW)
    d = parse(root / "public" / "feed.xml")
    assert [e.title for e in d.entries] == [f"Article {n}" for n in (24, 23, 22, 21, 20)]
    # The feeds' public URL defaults to the site URL.
    assert ("self", f"{SITE_URL}/feed.xml") in {(lk.rel, lk.href) for lk in d.feed.links}


def test_equal_dates_are_ordered_by_slug(tmp_path: Path) -> None:
    articles = {f"{slug}.md": f"---\ntitle: {slug}\ndate: 2026-02-01T09:00:00\n---\n\nBody.\n"
                for slug in ("delta", "alpha", "charlie", "bravo")}
    root = write_site(tmp_path / "site", articles)
    settings, loaded = load(root)
    build_feeds(settings, tuple(reversed(loaded)), NOW)
    titles = [e.title for e in parse(root / "public" / "atom.xml").entries]
    assert titles == ["alpha", "bravo", "charlie", "delta"]


def test_stale_category_feed_is_removed(tmp_path: Path) -> None:
    root = write_site(tmp_path / "site")
    settings, articles = load(root)
    build_feeds(settings, articles, NOW)
    (root / "public" / "category" / "infections" / "notes.txt").write_text("keep me")
    (root / "content" / "emoji.md").write_text(ARTICLES["emoji.md"].replace(
        "category: Infections", "category: Nutrition"), encoding="utf-8")
    settings, articles = load(root)
    report = build_feeds(settings, articles, NOW)
    assert sorted(p.name for p in report.removed) == ["atom.xml", "feed.json", "feed.xml"]
    assert (root / "public" / "category" / "infections" / "notes.txt").exists()
    assert not (root / "public" / "category" / "infections" / "feed.xml").exists()


def test_no_published_article_writes_no_feed(tmp_path: Path) -> None:
    root = write_site(tmp_path / "site", {"d.md": ARTICLES["draft.md"]})
    settings, articles = load(root)
    report = build_feeds(settings, articles, NOW)
    assert report.feeds == 0 and report.written == ()
    assert not (root / "public" / "feed.xml").exists()


def test_hand_edited_feed_file_is_rewritten(tmp_path: Path) -> None:
    root = write_site(tmp_path / "site")
    settings, articles = load(root)
    build_feeds(settings, articles, NOW)
    path = root / "public" / "category" / "nutrition" / "atom.xml"
    good = path.read_bytes()
    path.write_bytes(b"<broken/>")
    report = build_feeds(settings, articles, NOW)
    assert report.written == (path,) and path.read_bytes() == good


def test_manifest_cannot_make_the_build_delete_other_files(tmp_path: Path) -> None:
    root = write_site(tmp_path / "site")
    settings, articles = load(root)
    build_feeds(settings, articles, NOW)
    victim = root / "dispatch.toml"
    manifest = root / "public" / ".dispatch-feeds.json"
    manifest.write_text(manifest.read_text().replace(
        '"category/nutrition"', '"../.."'), encoding="utf-8")
    build_feeds(settings, articles, NOW)
    assert victim.exists()
    assert (root / "public" / "category" / "nutrition" / "feed.xml").exists()
