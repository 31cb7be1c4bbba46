"""Signed unsubscribe tokens and the one function that unsubscribes.

A token is ``<payload>.<mac>``: the payload is the base64url of
``"<subscriber id>:<scope>"`` (scope = the edition id, or a list name), the
mac is HMAC-SHA256 over the payload with the site's secret key. It is opaque
to the reader, cannot be forged or pointed at someone else, and needs no
database lookup to verify. The web app (``POST /unsubscribe/<token>``, RFC
8058 one-click) calls :func:`verify_token` then :func:`unsubscribe`.

The key comes from ``DISPATCH_SECRET_KEY``. Without it we create a random
development key in ``.dispatch/secret`` and say so loudly in the log, so the
main job works out of the box; a production site must set the variable,
because tokens signed with a key that later changes stop working.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from dispatch.config import Settings
from dispatch.errors import InputError
from dispatch.store.engine import Store
from dispatch.store.schema import subscribers
from dispatch.subscribers.address import InvalidAddress, normalise_email
from dispatch.subscribers.repository import set_status

SECRET_ENV = "DISPATCH_SECRET_KEY"
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UnsubscribeToken:
    subscriber_id: int
    scope: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def secret_key(settings: Settings, environ: Mapping[str, str] | None = None) -> bytes:
    env = os.environ if environ is None else environ
    value = env.get(SECRET_ENV, "")
    if value:
        return value.encode("utf-8")
    path = settings.state_dir / "secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(secrets.token_hex(32), encoding="ascii")
        tmp.chmod(0o600)
        os.replace(tmp, path)
    log.warning("%s is not set: signing unsubscribe links with the development key in %s; "
                "set %s in production so links keep working", SECRET_ENV, path, SECRET_ENV)
    return path.read_text(encoding="ascii").strip().encode("ascii")


def make_token(key: bytes, subscriber_id: int, scope: str) -> str:
    payload = _b64(f"{subscriber_id}:{scope}".encode())
    mac = hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


def verify_token(key: bytes, token: str) -> UnsubscribeToken | None:
    """The token's subscriber and scope, or None if it is malformed or forged."""
    payload, dot, mac = token.partition(".")
    if not dot or not payload or not mac:
        return None
    expected = _b64(hmac.new(key, payload.encode("ascii", "replace"), hashlib.sha256).digest())
    if not hmac.compare_digest(expected.encode("ascii"), mac.encode("ascii", "replace")):
        return None
    try:
        sid, colon, scope = _unb64(payload).decode("utf-8").partition(":")
        return UnsubscribeToken(int(sid), scope) if colon else None
    except (ValueError, UnicodeDecodeError):
        return None


def public_base(settings: Settings) -> str:
    """``[web] public_url`` from dispatch.toml, else the site URL."""
    value = settings.section("web").get("public_url")
    return (value if isinstance(value, str) and value else settings.site.url).rstrip("/")


def unsubscribe_path(key: bytes, subscriber_id: int, scope: str) -> str:
    """``/unsubscribe/<token>``: the route the web app serves (GET confirms,
    POST is the RFC 8058 one-click)."""
    return f"/unsubscribe/{make_token(key, subscriber_id, scope)}"


def webview_path(edition_id: str) -> str:
    """``/editions/<id>/``: the edition as a web page, the same for every
    reader, so it carries no personal data."""
    return f"/editions/{edition_id}/"


def unsubscribe_url(settings: Settings, key: bytes, subscriber_id: int, scope: str) -> str:
    return public_base(settings) + unsubscribe_path(key, subscriber_id, scope)


def webview_url(settings: Settings, edition_id: str) -> str:
    return public_base(settings) + webview_path(edition_id)


def unsubscribe(store: Store, target: UnsubscribeToken | int | str, now: datetime, *,
                key: bytes | None = None, reason: str = "unsubscribe link") -> bool:
    """Make a subscriber unsubscribed; every row still queued for them becomes
    suppressed, and a worker holding a leased row re-checks before sending.

    ``target`` is a verified token, a subscriber id, an email address, or a
    token string (then ``key`` is required). Idempotent: returns whether the
    status changed. An unknown address or a bad token is an InputError.
    """
    sid: int | None
    if isinstance(target, UnsubscribeToken):
        sid = target.subscriber_id
    elif isinstance(target, int):
        sid = target
    elif "@" in target:
        try:
            email = normalise_email(target)
        except InvalidAddress as exc:
            raise InputError(str(exc)) from None
        with store.read() as conn:
            sid = conn.execute(select(subscribers.c.id).where(subscribers.c.email == email)
                               ).scalar()
        if sid is None:
            raise InputError(f"no subscriber {email}")
    else:
        if key is None:
            raise ValueError("a token string needs the key to verify it")
        token = verify_token(key, target)
        if token is None:
            raise InputError("this unsubscribe link is not valid")
        sid = token.subscriber_id
    with store.write() as conn:
        return set_status(conn, [sid], "unsubscribed", now, reason) > 0
