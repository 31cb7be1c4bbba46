"""JSON Feed 1.1 (https://www.jsonfeed.org/version/1.1/), written by us.

feedgen has no JSON Feed writer. The document is built from the same
:class:`~dispatch.feeds.model.Feed` as RSS and Atom and serialised with sorted
keys and a fixed, compact layout, so equal input gives equal bytes.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from dispatch.feeds.formats import FeedFormat
from dispatch.feeds.model import Entry, Feed

VERSION = "https://jsonfeed.org/version/1.1"


def rfc3339(value: datetime) -> str:
    # isoformat() of an aware datetime is RFC 3339 (uppercase T, numeric offset).
    return value.isoformat(timespec="seconds")


def _item(entry: Entry) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": entry.id,
        "url": entry.url,
        "title": entry.title,
        "content_html": entry.content_html,
        "summary": entry.summary,
        "date_published": rfc3339(entry.published),
        "date_modified": rfc3339(entry.updated),
        "authors": [{"name": entry.author}],
        "author": {"name": entry.author},  # for JSON Feed 1.0 readers
    }
    if entry.categories:
        item["tags"] = list(entry.categories)
    if entry.image:
        item["image"] = entry.image
    if entry.external_url:
        item["external_url"] = entry.external_url
    return item


def feed_document(feed: Feed) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": VERSION,
        "title": feed.title,
        "home_page_url": feed.home_url,
        "feed_url": feed.self_url("json"),
        "description": feed.description,
        "language": feed.language,
        # 1.1 has "authors"; 1.0 readers still look for "author".
        "authors": [{"name": feed.author}],
        "author": {"name": feed.author},
        "items": [_item(e) for e in feed.entries],
    }
    if feed.logo:
        doc["icon"] = feed.logo
    if feed.icon:
        doc["favicon"] = feed.icon
    if feed.hub:
        doc["hubs"] = [{"type": "WebSub", "url": feed.hub}]
    return doc


def render_json(feed: Feed) -> bytes:
    # Compact on purpose: with ``indent`` the json module falls back to its
    # pure-Python encoder, several times slower. Readers do not care.
    text = json.dumps(feed_document(feed), ensure_ascii=False, sort_keys=True,
                      separators=(",", ":"))
    return (text + "\n").encode("utf-8")


JSON_FEED = FeedFormat("json", "feed.json", "application/feed+json", render_json)
