"""RSS 2.0 and Atom 1.0 through feedgen, with its known defects worked around.

feedgen 1.0.0 is the latest release and has defects that bite a publisher
(listed below). Each work-around below names the defect it answers and
has a test in ``tests/test_feeds_feedgen.py`` that fails without it:

1. Atom entry ``<link>`` loses ``rel``/``type``/``length`` (#135), so an
   enclosure becomes a second alternate link. We give feedgen no entry links
   in Atom and write them ourselves in an entry extension.
2. ``content(type="CDATA")`` writes ``<content type="CDATA">``. Atom content is
   always ``type="html"`` here.
3. The RSS channel ``<link>`` is the *last* ``fg.link()``; the site link is
   therefore added last, after the self link.
4. RSS drops ``rel="hub"``; a feed extension writes it.
5. ``updated``/``lastBuildDate`` default to now; both are set from the entries.
6. ``add_entry()`` prepends; entries are appended from a sorted list.
7. Naive datetimes raise; :func:`dispatch.feeds.model.aware` makes them aware.
8. Control characters fail the render; :func:`dispatch.feeds.model.xml_text`
   strips them before feedgen sees any text.
9. Atom without an author is accepted; every feed gets one.
10. One link list serves both formats, so each format gets its own generator
    and only its own self link.
"""

from __future__ import annotations

import html
from typing import Any

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem

from dispatch.feeds.formats import FeedFormat
from dispatch.feeds.model import Feed

ATOM_NS = "http://www.w3.org/2005/Atom"
DC_NS = "http://purl.org/dc/elements/1.1/"
GENERATOR = "dispatch"  # no version: an upgrade alone must not change the bytes

# feedgen instantiates extensions itself, without arguments, so their values
# are set on the instance (``fg.dispatch``/``fe.dispatch``) after registration.


class _RssChannel(BaseExtension):  # type: ignore[misc]
    """Defect 4: ``<atom:link rel="hub">`` in RSS, placed after the self link."""

    def __init__(self) -> None:
        self.hub: str | None = None

    def extend_ns(self) -> dict[str, str]:
        return {"atom": ATOM_NS, "dc": DC_NS}

    def extend_rss(self, rss: Any) -> Any:
        if self.hub:
            channel = rss[0]
            position = next((i + 1 for i, child in enumerate(channel)
                             if child.tag == f"{{{ATOM_NS}}}link"), len(channel))
            link = xml_elem(f"{{{ATOM_NS}}}link", channel, href=self.hub, rel="hub")
            channel.remove(link)
            channel.insert(position, link)
        return rss


class _RssItem(BaseEntryExtension):  # type: ignore[misc]
    """``dc:creator`` for the author's name: RSS ``<author>`` must be an email address."""

    def __init__(self) -> None:
        self.creator: str | None = None

    def extend_rss(self, item: Any) -> Any:
        if self.creator:
            xml_elem(f"{{{DC_NS}}}creator", item).text = self.creator
        return item


class _AtomEntry(BaseEntryExtension):  # type: ignore[misc]
    """Defect 1: entry links written with their attributes intact."""

    def __init__(self) -> None:
        self.links: list[dict[str, str]] = []

    def extend_atom(self, entry: Any) -> Any:
        for attributes in self.links:
            xml_elem("link", entry, **attributes)
        return entry


class _Nothing(BaseExtension):  # type: ignore[misc]
    pass


def _generator(feed: Feed) -> FeedGenerator:
    fg = FeedGenerator()
    fg.title(feed.title)
    fg.description(feed.description)
    fg.language(feed.language)
    fg.generator(GENERATOR)
    # Defect 9: Atom needs an author; the site's stands for every entry.
    fg.author(name=feed.author)
    # Defect 5: never the build time.
    fg.updated(feed.updated)
    return fg


def render_rss(feed: Feed) -> bytes:
    fg = _generator(feed)
    fg.register_extension("dispatch", _RssChannel, _RssItem, atom=False, rss=True)
    fg.dispatch.hub = feed.hub
    # Defects 3 and 10: only this format's self link, then the site link last,
    # because feedgen makes the last link the channel <link>.
    fg.link(href=feed.self_url("rss"), rel="self", type="application/rss+xml", replace=True)
    fg.link(href=feed.home_url, rel="alternate")
    fg.pubDate(max(e.published for e in feed.entries))
    if feed.logo:
        fg.image(url=feed.logo, title=feed.title, link=feed.home_url)
    for entry in feed.entries:  # already newest first
        fe = fg.add_entry(order="append")  # defect 6
        fe.guid(entry.id, permalink=False)  # a tag: URI is not a URL
        fe.title(entry.title)
        fe.link(href=entry.url)
        # RSS <description> is HTML; the dek is plain text, so escape it once.
        fe.description(html.escape(entry.summary, quote=False))
        fe.content(entry.content_html)  # content:encoded
        fe.pubDate(entry.published)
        fe.updated(entry.updated)  # defect 5 for entries
        fe.dispatch.creator = entry.author
        if entry.categories:
            fe.category([{"term": name} for name in entry.categories])
        if entry.image:
            # Length is unknown without fetching the image; 0 is the accepted
            # "unknown" value and keeps the build offline and deterministic.
            fe.enclosure(url=entry.image, length="0", type=entry.image_type)
    return bytes(fg.rss_str(pretty=True))


def render_atom(feed: Feed) -> bytes:
    fg = _generator(feed)
    fg.register_extension("dispatch", _Nothing, _AtomEntry, atom=True, rss=False)
    fg.id(feed.self_url("atom"))
    fg.subtitle(feed.description)
    fg.link(href=feed.self_url("atom"), rel="self", type="application/atom+xml", replace=True)
    if feed.hub:
        fg.link(href=feed.hub, rel="hub")
    fg.link(href=feed.home_url, rel="alternate", type="text/html")
    if feed.icon:
        fg.icon(feed.icon)
    if feed.logo:
        fg.logo(feed.logo)
    for entry in feed.entries:
        fe = fg.add_entry(order="append")  # defect 6
        fe.id(entry.id)
        fe.title(entry.title)
        fe.published(entry.published)
        fe.updated(entry.updated)
        fe.author(name=entry.author)
        fe.summary(entry.summary)  # type text: the dek is plain text
        fe.content(entry.content_html, type="html")  # defect 2: never "CDATA"
        if entry.categories:
            fe.category([{"term": name} for name in entry.categories])
        links = [{"rel": "alternate", "type": "text/html", "href": entry.url}]
        if entry.image:
            links.append({"rel": "enclosure", "type": entry.image_type or "image/jpeg",
                          "length": "0", "href": entry.image})
        if entry.external_url:
            links.append({"rel": "related", "type": "text/html", "href": entry.external_url})
        fe.dispatch.links = links  # defect 1: not fe.link()
    return bytes(fg.atom_str(pretty=True))


RSS = FeedFormat("rss", "feed.xml", "application/rss+xml", render_rss)
ATOM = FeedFormat("atom", "atom.xml", "application/atom+xml", render_atom)
