"""One test per feedgen 1.0.0 work-around (see src/dispatch/feeds/rss_atom.py); each fails
without it.

The "canary" tests show the defect is still in feedgen: when one starts
failing after an upgrade, the matching work-around can go.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import feedparser
import pytest
from feedgen.feed import FeedGenerator

from dispatch.config import Settings, SiteSettings
from dispatch.feeds import build_feeds
from dispatch.feeds.model import Entry, Feed
from dispatch.feeds.rss_atom import render_atom, render_rss
from dispatch.models import Article

ATOM = "{http://www.w3.org/2005/Atom}"
LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def entry(n: int, **changes: object) -> Entry:
    base = Entry(
        id=f"tag:example.org,2026-01-0{n}:a{n}", title=f"A{n}", url=f"https://example.org/a{n}/",
        published=datetime(2026, 1, n, 9, tzinfo=UTC), updated=datetime(2026, 1, n, 9, tzinfo=UTC),
        author="Ann", categories=("x",), summary="dek", content_html=f"<p>Body {n}</p>",
        image=f"https://example.org/img/{n}.jpg", image_type="image/jpeg",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def feed(*entries: Entry, hub: str | None = "https://hub.example/") -> Feed:
    chosen = entries or (entry(3), entry(2), entry(1))
    return Feed(
        path="", title="T", description="D", home_url="https://example.org/",
        self_urls=(("rss", "https://f.example/feed.xml"), ("atom", "https://f.example/atom.xml"),
                   ("json", "https://f.example/feed.json")),
        language="en", author="Site", updated=max(e.updated for e in chosen),
        entries=chosen, hub=hub,
    )


def article(slug: str, **changes: object) -> Article:
    base = Article(
        slug=slug, source=f"content/{slug}.md", title=slug,
        date=datetime(2026, 6, 1, 9, tzinfo=UTC),
        summary="dek", body_markdown="", body_html="<p>b</p>", sources_html="", sources=(),
        url=f"https://example.org/{slug}/", content_hash=slug, reading_minutes=1, excerpt="",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


SETTINGS = Settings(root=Path("."), site=SiteSettings(title="Site", url="https://example.org",
                                                     timezone="Europe/London"))


# 1. Atom entry links keep rel/type/length -------------------------------------------------

def test_atom_entry_links_keep_their_attributes() -> None:
    root = ET.fromstring(render_atom(feed()))
    for item in root.iter(f"{ATOM}entry"):
        links = {link.get("rel"): link.attrib for link in item.iter(f"{ATOM}link")}
        assert set(links) == {"alternate", "enclosure"}
        assert links["alternate"]["type"] == "text/html"
        assert links["enclosure"]["type"] == "image/jpeg"
        assert links["enclosure"]["length"] == "0"
    d = feedparser.parse(render_atom(feed()))
    assert d.entries[0].link == "https://example.org/a3/"  # not the image
    assert d.entries[0].enclosures[0].href == "https://example.org/img/3.jpg"


def test_canary_feedgen_still_drops_entry_link_rel() -> None:
    fg = FeedGenerator()
    fg.id("x"), fg.title("t"), fg.updated(NOW)
    fe = fg.add_entry()
    fe.id("e"), fe.title("e"), fe.updated(NOW), fe.content("c", type="html")
    fe.link(href="https://example.org/img.jpg", rel="enclosure", type="image/jpeg")
    link = ET.fromstring(fg.atom_str()).find(f"{ATOM}entry/{ATOM}link")
    assert link is not None and link.get("rel") is None


# 2. Atom content is type="html", never "CDATA" --------------------------------------------

def test_atom_content_is_typed_html() -> None:
    data = render_atom(feed())
    assert b"CDATA" not in data
    contents = list(ET.fromstring(data).iter(f"{ATOM}content"))
    assert contents and all(c.get("type") == "html" for c in contents)
    assert feedparser.parse(data).entries[0].content[0].type == "text/html"


# 3. RSS channel link is the site, though self and hub links exist -------------------------

def test_rss_channel_link_is_the_site() -> None:
    data = render_rss(feed())
    assert ET.fromstring(data).findtext("channel/link") == "https://example.org/"
    assert feedparser.parse(data).feed.link == "https://example.org/"


def test_canary_feedgen_takes_the_last_link_for_rss() -> None:
    fg = FeedGenerator()
    fg.title("t"), fg.description("d")
    fg.link(href="https://example.org/", rel="alternate")
    fg.link(href="https://f.example/feed.xml", rel="self")
    assert ET.fromstring(fg.rss_str()).findtext("channel/link") == "https://f.example/feed.xml"


# 4. RSS advertises the WebSub hub ---------------------------------------------------------

def test_rss_has_hub_link_after_self() -> None:
    channel = ET.fromstring(render_rss(feed())).find("channel")
    assert channel is not None
    links = [(link.get("rel"), link.get("href")) for link in channel.findall(f"{ATOM}link")]
    assert links == [("self", "https://f.example/feed.xml"), ("hub", "https://hub.example/")]
    assert b'rel="hub"' not in render_rss(feed(hub=None))


# 5. No "now": feed dates come from the entries --------------------------------------------

def test_feed_dates_are_the_newest_entry_not_now() -> None:
    newest = datetime(2026, 1, 3, 9, tzinfo=UTC)
    rss = ET.fromstring(render_rss(feed()))
    assert rss.findtext("channel/lastBuildDate") == "Sat, 03 Jan 2026 09:00:00 +0000"
    assert rss.findtext("channel/pubDate") == "Sat, 03 Jan 2026 09:00:00 +0000"
    atom = ET.fromstring(render_atom(feed()))
    assert atom.findtext(f"{ATOM}updated") == newest.isoformat()
    assert [e.findtext(f"{ATOM}updated") for e in atom.iter(f"{ATOM}entry")] == [
        "2026-01-03T09:00:00+00:00", "2026-01-02T09:00:00+00:00", "2026-01-01T09:00:00+00:00"]


# 6. Entries keep the order given (newest first), not feedgen's prepend --------------------

def test_entries_keep_the_given_order() -> None:
    for data in (render_rss(feed()), render_atom(feed())):
        assert [e.title for e in feedparser.parse(data).entries] == ["A3", "A2", "A1"]


# 7. Naive datetimes are read as site-local instead of raising -----------------------------

def test_naive_article_date_is_read_in_site_timezone(tmp_path: Path) -> None:
    naive = article("naive", date=datetime(2026, 7, 1, 9, 0))
    report = build_feeds(SETTINGS, [naive], NOW, tmp_path)
    assert len(report.written) == 3  # the site-wide feed; the article has no category
    atom = ET.fromstring((tmp_path / "atom.xml").read_bytes())
    assert atom.findtext(f"{ATOM}entry/{ATOM}published") == "2026-07-01T09:00:00+01:00"


# 8. XML-illegal control characters are stripped -------------------------------------------

def test_control_characters_are_stripped(tmp_path: Path) -> None:
    dirty = article("dirty", summary="bad\x0bdek\x00", author="Ann\x1f", category="Cat\x08",
                    body_html="<p>b\x0cody\ufffe</p>", tags=("t\x01",))
    build_feeds(SETTINGS, [dirty], NOW, tmp_path)
    for path in tmp_path.rglob("*.*"):
        text = path.read_text(encoding="utf-8")
        assert not any(ch in text for ch in "\x00\x01\x08\x0b\x0c\x1f\ufffe"), path
    d = feedparser.parse((tmp_path / "atom.xml").read_bytes())
    assert d.entries[0].summary == "baddek" and not d.bozo
    assert (tmp_path / "category" / "cat" / "feed.xml").exists()


# 9. Atom always has an author -------------------------------------------------------------

def test_atom_has_a_feed_author_without_site_author(tmp_path: Path) -> None:
    build_feeds(SETTINGS, [article("a")], NOW, tmp_path)
    atom = ET.fromstring((tmp_path / "atom.xml").read_bytes())
    assert atom.findtext(f"{ATOM}author/{ATOM}name") == "Site"  # the site title stands in
    assert atom.findtext(f"{ATOM}entry/{ATOM}author/{ATOM}name") == "Site"


# 10. Each format's self link points at its own file ----------------------------------------

def test_each_format_links_to_itself() -> None:
    rss = feedparser.parse(render_rss(feed()))
    atom = feedparser.parse(render_atom(feed()))
    assert [lk.href for lk in rss.feed.links if lk.rel == "self"] == ["https://f.example/feed.xml"]
    assert [lk.href for lk in atom.feed.links if lk.rel == "self"] == [
        "https://f.example/atom.xml"]


def test_rss_guid_is_not_a_permalink() -> None:
    guid = ET.fromstring(render_rss(feed())).find("channel/item/guid")
    assert guid is not None
    assert guid.text == "tag:example.org,2026-01-03:a3" and guid.get("isPermaLink") == "false"


def test_repeated_hour_orders_by_real_time(tmp_path: Path) -> None:
    # 2026-10-25 01:30 happens twice in London; fold=1 is the later (GMT) one.
    first = article("first", date=datetime(2026, 10, 25, 1, 45, tzinfo=LONDON))  # 00:45Z
    second = article("second", date=datetime(2026, 10, 25, 1, 30, fold=1, tzinfo=LONDON))
    build_feeds(SETTINGS, [first, second], NOW, tmp_path)
    titles = [e.title for e in feedparser.parse((tmp_path / "atom.xml").read_bytes()).entries]
    assert titles == ["second", "first"]  # 01:30Z is newer than 00:45Z


def test_publication_near_dst_changes_is_decided_in_real_time(tmp_path: Path) -> None:
    # Spring forward (2026-03-29, 01:00 GMT → 02:00 BST): 01:30 does not exist
    # and means 01:30Z; at 01:10Z the clock reads 02:10, yet it is not due.
    gap = article("gap", date=datetime(2026, 3, 29, 1, 30, tzinfo=LONDON))
    report = build_feeds(SETTINGS, [gap], datetime(2026, 3, 29, 1, 10, tzinfo=UTC), tmp_path)
    assert report.feeds == 0 and not gap.is_published(datetime(2026, 3, 29, 1, 10, tzinfo=UTC))
    # Fall back (2026-10-25, 02:00 BST → 01:00 GMT): 01:30 (first) is 00:30Z,
    # due at 01:10Z although the clock then reads 01:10 again.
    repeat = article("repeat", date=datetime(2026, 10, 25, 1, 30, tzinfo=LONDON))
    report = build_feeds(SETTINGS, [repeat], datetime(2026, 10, 25, 1, 10, tzinfo=UTC),
                         tmp_path / "autumn")
    assert report.feeds == 1


def test_naive_now_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="aware"):
        build_feeds(SETTINGS, [article("a")], datetime(2026, 12, 1), tmp_path)
