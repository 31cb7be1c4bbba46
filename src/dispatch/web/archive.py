"""``/archive/`` and ``/archive/feed.xml``: the editions readers can look back on.

An edition is listed once at least one of its messages was sent (the same
rule as its web view) and only when every list of its audience is marked
``public = true`` in ``[subscribers.lists]``: an edition that went to a
private list never appears, even if a public list shared it. Each entry
links to the edition's web view, which is the same for every reader: no
name, no address, no personal token. Newest first, by the time it was
queued.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from xml.sax.saxutils import escape

from sqlalchemy import exists, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from dispatch.config import Settings
from dispatch.store.engine import Store
from dispatch.store.schema import editions, outbox
from dispatch.unsubscribe import public_base, webview_path
from dispatch.web.pages import layout

CACHE_CONTROL = "public, max-age=300"
MAX_ENTRIES = 500


@dataclass(frozen=True, slots=True)
class Entry:
    edition_id: str
    subject: str
    kind: str
    queued_at: datetime


def archive_entries(store: Store, public: set[str], limit: int = MAX_ENTRIES) -> list[Entry]:
    """Sent editions whose whole audience is public lists, newest first."""
    if not public:
        return []
    was_sent = exists().where(outbox.c.edition_id == editions.c.edition_id,
                              outbox.c.status == "sent")
    e = editions.c
    found: list[Entry] = []
    with store.read() as conn:
        rows = conn.execute(select(e.edition_id, e.subject, e.kind, e.audience, e.queued_at)
                            .where(was_sent).order_by(e.queued_at.desc(), e.edition_id))
        for row in rows:
            audience = set(json.loads(row.audience))
            if audience and audience <= public:
                found.append(Entry(row.edition_id, row.subject, row.kind, row.queued_at))
                if len(found) >= limit:
                    break
    return found


class Archive:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    def _entries(self) -> list[Entry]:
        return archive_entries(self.store, set(self.settings.subscribers.public_lists()))

    async def page(self, request: Request) -> Response:
        entries = await run_in_threadpool(self._entries)
        if entries:
            items = "".join(
                f'<li><a href="{html.escape(webview_path(e.edition_id))}">'
                f"{html.escape(e.subject)}</a><br><span class=\"meta\">"
                f'<time datetime="{e.queued_at.date().isoformat()}">'
                f"{e.queued_at.strftime('%d %B %Y')}</time></span></li>" for e in entries)
            body = f'<ol class="editions" reversed>{items}</ol>'
        else:
            body = "<p>Nothing has been sent yet.</p>"
        body = ('<p>Every edition we have sent, newest first. '
                '<a href="/archive/feed.xml">RSS feed of editions</a> · '
                '<a href="/subscribe">Subscribe</a></p>' + body)
        response = layout(self.settings, "Past editions", body,
                          headers={"Cache-Control": CACHE_CONTROL})
        return response

    async def feed(self, request: Request) -> Response:
        entries = await run_in_threadpool(self._entries)
        base = public_base(self.settings)
        site = self.settings.site
        items = []
        for e in entries:
            link = escape(base + webview_path(e.edition_id))
            items.append(f"<item><title>{escape(e.subject)}</title><link>{link}</link>"
                         f'<guid isPermaLink="true">{link}</guid>'
                         f"<pubDate>{format_datetime(e.queued_at)}</pubDate></item>")
        updated = format_datetime(entries[0].queued_at) if entries else None
        xml = ('<?xml version="1.0" encoding="utf-8"?>\n'
               '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>'
               f"<title>{escape(site.title)}: past editions</title>"
               f"<link>{escape(base)}/archive/</link>"
               f'<atom:link href="{escape(base)}/archive/feed.xml" rel="self" '
               'type="application/rss+xml"/>'
               f"<description>{escape(site.description or site.title)}</description>"
               f"<language>{escape(site.language)}</language>"
               + (f"<lastBuildDate>{updated}</lastBuildDate>" if updated else "")
               + "".join(items) + "</channel></rss>\n")
        return Response(xml, media_type="application/rss+xml; charset=utf-8",
                        headers={"Cache-Control": CACHE_CONTROL})


def routes(settings: Settings, store: Store) -> list[BaseRoute]:
    archive = Archive(settings, store)
    return [
        Route("/archive/", archive.page, methods=["GET"]),
        Route("/archive/feed.xml", archive.feed, methods=["GET"]),
    ]
