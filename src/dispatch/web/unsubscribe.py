"""``/unsubscribe/<token>``: a confirmation page on GET, RFC 8058 one-click on POST.

Mail providers (Gmail, Yahoo) send ``POST <List-Unsubscribe URL>`` with the
body ``List-Unsubscribe=One-Click``, form-urlencoded or multipart, and with no
cookie, session or CSRF token. So the POST handler trusts
the signed token in the path alone: it never looks for a CSRF token (that is
exactly what silently broke one-click elsewhere) and does not need to parse
the body at all, whatever its encoding. It is idempotent and answers 200.

GET only shows a page with a button that POSTs back to the same URL: link
scanners and prefetchers follow GET links on their own, and must never
unsubscribe anybody.

A token that fails verification (forged, altered, truncated, signed with
another key, spliced from two subscribers' tokens) gets a plain 400 page and
changes nothing.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from dispatch.config import Settings
from dispatch.store.engine import Store
from dispatch.store.schema import subscribers
from dispatch.unsubscribe import UnsubscribeToken, secret_key, unsubscribe, verify_token

Clock = Callable[[], datetime]
MAX_TOKEN = 512
"""Our tokens are ~40–120 characters; anything far longer is refused before
any hashing."""
MAX_BODY = 64 * 1024
"""A one-click body is 26 bytes; we read (and ignore) at most this much."""

# The token sits in the URL: keep it out of caches, search indexes and the
# Referer header of anything the page links to.
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'",
}
_STYLE = ("body{font-family:system-ui,sans-serif;max-width:34rem;margin:4rem auto;"
          "padding:0 1rem;line-height:1.5;color:#222}"
          "button{font-size:1rem;padding:.6rem 1.4rem;cursor:pointer}")


def wall_clock() -> datetime:
    """The web app is an edge of the program, like the CLI: the one place here
    that reads the clock. Tests pass their own."""
    return datetime.now(UTC)


def page(settings: Settings, title: str, body_html: str, status: int = 200) -> HTMLResponse:
    site = html.escape(settings.site.title)
    document = (f'<!doctype html>\n<html lang="{html.escape(settings.site.language)}"><head>'
                '<meta charset="utf-8"><meta name="viewport" '
                'content="width=device-width,initial-scale=1">'
                f"<title>{html.escape(title)} · {site}</title><style>{_STYLE}</style></head>"
                f"<body><h1>{html.escape(title)}</h1>{body_html}<p><small>{site}</small></p>"
                "</body></html>\n")
    return HTMLResponse(document, status_code=status, headers=_HEADERS)


class UnsubscribePages:
    def __init__(self, settings: Settings, store: Store, key: bytes, clock: Clock) -> None:
        self.settings = settings
        self.store = store
        self.key = key
        self.clock = clock

    def _token(self, request: Request) -> UnsubscribeToken | None:
        raw = str(request.path_params.get("token", ""))
        return verify_token(self.key, raw) if 0 < len(raw) <= MAX_TOKEN else None

    def invalid(self) -> HTMLResponse:
        return page(self.settings, "This unsubscribe link is not valid",
                    "<p>The link may have been cut short or changed on the way. Please use "
                    "the unsubscribe link from the most recent email you received, or reply "
                    "to that email and ask to be removed.</p>", status=400)

    def _status(self, subscriber_id: int) -> str | None:
        with self.store.read() as conn:
            found = conn.execute(select(subscribers.c.status)
                                 .where(subscribers.c.id == subscriber_id)).scalar()
        return None if found is None else str(found)

    def _apply(self, token: UnsubscribeToken) -> None:
        # A correctly signed token for someone no longer in the database is
        # still ours: they are not subscribed, which is what they asked for.
        if self._status(token.subscriber_id) is not None:
            unsubscribe(self.store, token, self.clock(), reason="one-click unsubscribe link")

    async def confirm(self, request: Request) -> Response:
        token = self._token(request)
        if token is None:
            return self.invalid()
        status = await run_in_threadpool(self._status, token.subscriber_id)
        if status is None or status != "active":
            return page(self.settings, "You are unsubscribed",
                        "<p>This address receives no more emails from us.</p>")
        # The form POSTs to this same URL with the RFC 8058 body, so the
        # button and a mail client's one-click take the very same path.
        return page(self.settings, "Unsubscribe?",
                    "<p>Press the button to stop receiving these emails. Nothing happens "
                    "until you do.</p>"
                    '<form method="post"><input type="hidden" '
                    'name="List-Unsubscribe" value="One-Click">'
                    '<button type="submit">Unsubscribe</button></form>')

    async def one_click(self, request: Request) -> Response:
        token = self._token(request)
        read = 0
        async for chunk in request.stream():  # drain the body; its content does not matter
            read += len(chunk)
            if read > MAX_BODY:
                return page(self.settings, "Request too large", "", status=413)
        if token is None:
            return self.invalid()
        await run_in_threadpool(self._apply, token)
        return page(self.settings, "You are unsubscribed",
                    "<p>You will receive no more emails from us. Emails already on their "
                    "way to you are stopped.</p>")

    async def without_token(self, request: Request) -> Response:
        """Where the web view's neutral unsubscribe link points: the web view
        is the same for every reader, so it cannot carry anyone's token."""
        return page(self.settings, "Unsubscribing",
                    "<p>Use the unsubscribe link at the bottom of the email you received "
                    "(or your mail program's own unsubscribe button): it is personal to "
                    "your address and works with one click.</p>")


def routes(settings: Settings, store: Store, clock: Clock = wall_clock) -> list[BaseRoute]:
    pages = UnsubscribePages(settings, store, secret_key(settings), clock)
    return [
        Route("/unsubscribe/", pages.without_token, methods=["GET"]),
        Route("/unsubscribe/{token}", pages.confirm, methods=["GET"]),
        Route("/unsubscribe/{token}", pages.one_click, methods=["POST"]),
    ]
