"""Who is asking: the staff session cookie, CSRF tokens, and the login door.

The cookie is ``__Host-``-prefixed, ``Secure``, ``HttpOnly`` and
``SameSite=Strict``: the browser sends it only over HTTPS (or to
localhost), never to a subdomain, never from a page on another site, and no
script can read it. A state-changing form carries the session's CSRF token
as well, compared in constant time: SameSite alone leaves out older
browsers and same-site attackers.

The login form has no session yet, so its CSRF token is a random value set
in a short-lived cookie and echoed by the form (a double submit).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from dispatch.staff import StaffSession, session_for
from dispatch.store.engine import Store

COOKIE = "__Host-dispatch-staff"
LOGIN_COOKIE = "__Host-dispatch-login"
MAX_FORM = 16 * 1024
"""No admin form is anywhere near this; bigger bodies are refused unread."""

Handler = Callable[[Request, StaffSession], Awaitable[Response]]


def cookie_options() -> dict[str, object]:
    return {"path": "/", "secure": True, "httponly": True, "samesite": "strict"}


def session_of(store: Store, request: Request, now: datetime) -> StaffSession | None:
    return session_for(store, request.cookies.get(COOKIE), now)


def to_login(request: Request) -> Response:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    # Only our own paths come back as ``next``: never an open redirect.
    return RedirectResponse("/admin/login?next=" + _quote(target), status_code=303)


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


def safe_next(value: str | None) -> str:
    if value and value.startswith("/admin/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/admin/"


def csrf_ok(expected: str, given: object) -> bool:
    return isinstance(given, str) and hmac.compare_digest(expected.encode(), given.encode())


def new_login_token() -> str:
    return secrets.token_urlsafe(24)


async def read_form(request: Request) -> dict[str, str] | None:
    """The url-encoded body as a dict, or None when it is too big or not a form."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_FORM):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return None
    from urllib.parse import parse_qsl

    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        return None
    return dict(pairs)
