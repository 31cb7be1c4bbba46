"""Signed unsubscribe tokens and the one function that unsubscribes.

A token is ``<payload>.<mac>``: the payload is the base64url of
``"<subscriber id>:<scope>"`` (scope = the edition id, or a list name), the
mac is HMAC-SHA256 over the payload with the site's secret key. It is opaque
to the reader, cannot be forged or pointed at someone else, and needs no
database lookup to verify. The web app (``POST /unsubscribe/<token>``, RFC
8058 one-click) calls :func:`verify_token` then :func:`unsubscribe`.

The key comes from ``DISPATCH_SECRET_KEY``. Without it we create a random
development key in ``.dispatch/secret`` and say so loudly in the log, so the
main job works out of the box on the embedded SQLite database (one machine,
one site folder, one key), and ``dispatch check`` warns about it. On
PostgreSQL — the scale-out set-up, where workers and the web app may run on
different machines, each with its own ``.dispatch/`` — a per-machine key
would make every link a worker signs fail on the web app (400), silently; so
there the commands that sign or verify refuse to start without the variable
(:func:`require_secret_key`). Tokens signed with a key that later changes
stop working, so a production site sets the variable once and keeps it.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from dispatch.config import Settings
from dispatch.errors import ConfigError, InputError, Problem
from dispatch.secret import SECRET_ENV as SECRET_ENV
from dispatch.secret import hmac_sha256
from dispatch.secret import secret_key as secret_key
from dispatch.store.engine import Store
from dispatch.values.address import InvalidAddress, identity_key, normalise_email

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UnsubscribeToken:
    subscriber_id: int
    scope: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _note(settings: Settings) -> str:
    path = settings.state_dir / "secret"
    with contextlib.suppress(ValueError):  # shown relative to the site when inside it
        path = path.relative_to(settings.root)
    return (f"{SECRET_ENV} is not set: unsubscribe links are signed with the development "
            f"key in {path}; set {SECRET_ENV} in production so links keep working")


def secret_key_note(settings: Settings, environ: Mapping[str, str] | None = None
                    ) -> str | None:
    """The reminder ``check`` and ``serve`` print when the development key is
    in use on the embedded database (on PostgreSQL it is an error instead)."""
    env = os.environ if environ is None else environ
    if env.get(SECRET_ENV) or _is_scale_out(settings.database_url):
        return None
    return _note(settings)


def _is_scale_out(database_url: str) -> bool:
    return database_url.split(":", 1)[0].startswith("postgres")


def require_secret_key(store: Store, environ: Mapping[str, str] | None = None) -> None:
    """Refuse a development key where processes on other machines must share
    the key: on PostgreSQL, ``DISPATCH_SECRET_KEY`` has to be set."""
    env = os.environ if environ is None else environ
    if store.is_postgres and not env.get(SECRET_ENV):
        raise ConfigError(
            f"{SECRET_ENV} is not set. With a PostgreSQL database every `dispatch serve`, "
            f"`dispatch worker` and `dispatch run` must sign and verify unsubscribe links with "
            f"one shared key from the environment (a per-machine development key would make "
            f"the links fail); generate one once, e.g. `openssl rand -hex 32`, and set "
            f"{SECRET_ENV} to it for every process")


def secret_key_problems(settings: Settings, environ: Mapping[str, str] | None = None
                        ) -> list[Problem]:
    """What ``dispatch check`` says about the key: nothing when the variable
    is set, nor on the embedded SQLite database (serve, worker and run share
    the development key in the state folder there, and the README says to set
    one in production); an error on PostgreSQL, where ``dispatch serve``,
    ``worker`` and ``run`` refuse to start without it."""
    env = os.environ if environ is None else environ
    if env.get(SECRET_ENV) or not _is_scale_out(settings.database_url):
        return []
    return [Problem("environment", "not set: `dispatch serve`, `dispatch worker` and "
                    "`dispatch run` refuse to start on PostgreSQL without it",
                    field=SECRET_ENV, expected="one secret shared by every process, "
                    "e.g. from `openssl rand -hex 32`")]


def make_token(key: bytes, subscriber_id: int, scope: str) -> str:
    payload = _b64(f"{subscriber_id}:{scope}".encode())
    return f"{payload}.{_b64(hmac_sha256(key, payload.encode('ascii')))}"


def verify_token(key: bytes, token: str) -> UnsubscribeToken | None:
    """The token's subscriber and scope, or None if it is malformed or forged."""
    payload, dot, mac = token.partition(".")
    if not dot or not payload or not mac:
        return None
    expected = _b64(hmac_sha256(key, payload.encode("ascii", "replace")))
    if not hmac.compare_digest(expected.encode("ascii"), mac.encode("ascii", "replace")):
        return None
    try:
        sid, colon, scope = _unb64(payload).decode("utf-8").partition(":")
        return UnsubscribeToken(int(sid), scope) if colon else None
    except (ValueError, UnicodeDecodeError):
        return None


def public_base(settings: Settings) -> str:
    """``[web] public_url`` from dispatch.toml, else the site URL."""
    return (settings.web.public_url or settings.site.url).rstrip("/")


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
    # Imported here: `dispatch check` reads this module for the key notes only.
    from sqlalchemy import select

    from dispatch.store.schema import subscribers
    from dispatch.subscribers.repository import set_status

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
            sid = conn.execute(select(subscribers.c.id)
                               .where(subscribers.c.email_key == identity_key(email))).scalar()
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
