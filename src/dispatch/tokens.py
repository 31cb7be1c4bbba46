"""Signed tokens for the reader's pages: confirmation links, preference links
and the form tokens that carry CSRF protection and the time a form was shown.

A token is ``<payload>.<mac>`` like an unsubscribe token, but each purpose
signs with its own key derived from the site's secret (HMAC of the purpose
name), so a token made for one purpose never verifies for another, and none
of these verifies as an unsubscribe token (their payload is not
``<id>:<scope>``).
"""

from __future__ import annotations

import base64
import hmac
from functools import lru_cache
from typing import Literal

from dispatch.secret import hmac_sha256

Purpose = Literal["confirm", "preferences", "form"]
MAX_TOKEN = 512
"""Ours are well under 200 characters; longer input is refused before hashing."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@lru_cache(maxsize=16)
def _subkey(key: bytes, purpose: Purpose) -> bytes:
    # Derived once per key and purpose, not once per token.
    return hmac_sha256(key, f"dispatch-token:{purpose}".encode())


def sign(key: bytes, purpose: Purpose, *fields: str) -> str:
    if any("|" in f for f in fields):
        raise ValueError("token fields cannot contain '|'")
    payload = _b64("|".join((purpose, *fields)).encode())
    mac = hmac_sha256(_subkey(key, purpose), payload.encode("ascii"))
    return f"{payload}.{_b64(mac)}"


def verify(key: bytes, purpose: Purpose, token: str) -> tuple[str, ...] | None:
    """The fields signed into ``token`` for ``purpose``, or None if it is not ours."""
    if not 0 < len(token) <= MAX_TOKEN:
        return None
    payload, dot, mac = token.partition(".")
    if not dot or not payload or not mac:
        return None
    expected = _b64(hmac_sha256(_subkey(key, purpose), payload.encode("ascii", "replace")))
    if not hmac.compare_digest(expected.encode("ascii"), mac.encode("ascii", "replace")):
        return None
    try:
        parts = _unb64(payload).decode("utf-8").split("|")
    except (ValueError, UnicodeDecodeError):
        return None
    if parts[0] != purpose:
        return None
    return tuple(parts[1:])


def confirm_token(key: bytes, request_id: int, nonce: str) -> str:
    return sign(key, "confirm", str(request_id), nonce)


def read_confirm_token(key: bytes, token: str) -> tuple[int, str] | None:
    fields = verify(key, "confirm", token)
    if fields is None or len(fields) != 2 or not fields[0].isdigit():
        return None
    return int(fields[0]), fields[1]


def preferences_token(key: bytes, subscriber_id: int) -> str:
    return sign(key, "preferences", str(subscriber_id))


def preferences_path(key: bytes, subscriber_id: int) -> str:
    """``/preferences/<token>``: the reader's page, linked from every email footer."""
    return f"/preferences/{preferences_token(key, subscriber_id)}"


def read_preferences_token(key: bytes, token: str) -> int | None:
    fields = verify(key, "preferences", token)
    if fields is None or len(fields) != 1 or not fields[0].isdigit():
        return None
    return int(fields[0])


def form_token(key: bytes, form: str, issued: int, browser: str) -> str:
    """The hidden field of every form: which form, when it was shown (epoch
    seconds) and the browser's CSRF cookie it belongs to."""
    return sign(key, "form", form, str(issued), browser)


def read_form_token(key: bytes, token: str, form: str, browser: str) -> int | None:
    """When the form was shown, if the token is ours, for this form and this
    browser's cookie; None otherwise."""
    fields = verify(key, "form", token)
    if fields is None or len(fields) != 3 or fields[0] != form or not fields[1].isdigit():
        return None
    if not browser or not hmac.compare_digest(fields[2].encode(), browser.encode()):
        return None
    return int(fields[1])
