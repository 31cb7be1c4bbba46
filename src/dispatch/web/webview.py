"""``/editions/<id>/``: the web view of a sent edition ("view this email in your browser").

The outbox stores each edition once, rendered, with placeholder tokens where
each recipient's values go (never a copy per reader). The web view fills those tokens with
neutral values — the name fallback, "you", a generic unsubscribe page — so one
page serves every reader and holds nobody's name, address or unsubscribe
token: the link is often forwarded, and anyone may open it.

Only an edition that has gone out to at least one reader is shown. Edition
ids are guessable (``<slug>.<list>``), so serving every stored edition would
publish one that is still queued for later, paused, or cancelled before a
single message left; until a row is sent, the page is a 404 like an unknown
id. A sent row never becomes unsent, so a page, once shown, stays.
"""

from __future__ import annotations

import hashlib
import html
import re
import threading
from collections.abc import Mapping

from sqlalchemy import exists, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from dispatch.config import Settings
from dispatch.store.engine import Store
from dispatch.store.schema import editions, outbox
from dispatch.unsubscribe import public_base, webview_path
from dispatch.web.conditional import none_match

CACHE_CONTROL = "public, max-age=300"
_MAX_CACHED = 64


def neutral_values(settings: Settings, edition_id: str) -> dict[str, str]:
    """What stands in for the recipient on the shared page."""
    from dispatch.render import load_email_settings

    base = public_base(settings)
    return {
        "name": load_email_settings(settings).name_fallback,
        "first_name": load_email_settings(settings).first_name_fallback,
        "email": "you",
        "unsubscribe_url": base + "/unsubscribe/",
        "webview_url": base + webview_path(edition_id),
        "preferences_url": base + "/preferences/",
    }


def fill(document: str, values: Mapping[str, str]) -> str:
    """Replace every recipient placeholder with its escaped neutral value.

    ``html.escape(quote=True)`` is right in text and in quoted attributes
    alike, which is everywhere a placeholder can sit in rendered HTML.
    """
    from dispatch.render.edition import PLACEHOLDERS

    by_token = {token: html.escape(values[key], quote=True)
                for key, token in PLACEHOLDERS.items()}
    pattern = re.compile("|".join(re.escape(t) for t in by_token))
    return pattern.sub(lambda m: by_token[m.group()], document)


def sent_edition_json(store: Store, edition_id: str) -> str | None:
    """The stored rendered edition, if at least one of its messages was sent.

    One indexed lookup (``ix_outbox_edition_status``), however large the
    edition.
    """
    was_sent = exists().where(outbox.c.edition_id == edition_id, outbox.c.status == "sent")
    with store.read() as conn:
        body = conn.execute(select(editions.c.body)
                            .where(editions.c.edition_id == edition_id, was_sent)).scalar()
    return None if body is None else str(body)


class WebViews:
    """Renders each sent edition's page once; stored editions never change,
    and only found (sent) pages are cached, so an edition's first send makes
    its page appear."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._pages: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()

    def _page(self, edition_id: str) -> tuple[bytes, str] | None:
        with self._lock:
            found = self._pages.get(edition_id)
        if found is not None:
            return found
        body = sent_edition_json(self.store, edition_id)
        if body is None:
            return None
        from dispatch.render import Edition

        edition = Edition.from_json(body)
        data = fill(edition.html, neutral_values(self.settings, edition_id)).encode("utf-8")
        found = (data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"')
        with self._lock:
            if len(self._pages) >= _MAX_CACHED:
                self._pages.pop(next(iter(self._pages)))
            self._pages[edition_id] = found
        return found

    async def show(self, request: Request) -> Response:
        edition_id = str(request.path_params["edition_id"])
        found = await run_in_threadpool(self._page, edition_id)
        if found is None:
            return PlainTextResponse("no such edition", status_code=404)
        data, etag = found
        headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
        if none_match(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        return HTMLResponse(data, headers=headers)


def routes(settings: Settings, store: Store) -> list[BaseRoute]:
    views = WebViews(settings, store)
    return [Route("/editions/{edition_id}/", views.show, methods=["GET"])]
