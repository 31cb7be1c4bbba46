"""VERP: a signed token naming the outbox row, inside an address.

Each message leaves with the return path ``bounces+TOKEN@example.org``, and
its List-Unsubscribe mailto is ``unsubscribe+TOKEN@example.org``. TOKEN is
``<outbox row id>-<MAC>``: the row id in decimal, and the first 80 bits of
HMAC-SHA256 over ``purpose:row id`` with the site's secret key, in lower-case
base32. So a report is matched to the exact message (edition and reader)
even when the server that wrote it dropped the original headers, a token
cannot be forged or pointed at another row, and a bounce token cannot be
replayed as an unsubscribe (the purpose is signed).

Why this shape: a local part holds at most 64 characters and some servers
lower-case it, so the token is short (at most 36) and case-free; it uses
only letters, digits and ``-``, which need no quoting anywhere.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from dispatch.bounces.settings import split_base
from dispatch.secret import hmac_sha256

Purpose = Literal["bounce", "unsubscribe"]
_MAC_BYTES = 10  # 80 bits: 16 base32 letters
_TOKEN = re.compile(r"^([0-9]{1,19})-([a-z2-7]{16})$")


@dataclass(frozen=True, slots=True)
class RowToken:
    purpose: Purpose
    row_id: int


_PAIRS = [a + b for a in "abcdefghijklmnopqrstuvwxyz234567"
          for b in "abcdefghijklmnopqrstuvwxyz234567"]
"""Two lower-case base32 letters for each 10-bit value."""


def _b32(mac: bytes) -> str:
    """Lower-case base32 of 80 bits (no padding: 80 is a multiple of 5), as
    ``base64.b32encode(mac).decode().lower()``, which in Python is a loop
    over 5-byte groups: twice the cost, once for every message sent."""
    n = int.from_bytes(mac, "big")
    p = _PAIRS
    return (p[n >> 70] + p[n >> 60 & 1023] + p[n >> 50 & 1023] + p[n >> 40 & 1023]
            + p[n >> 30 & 1023] + p[n >> 20 & 1023] + p[n >> 10 & 1023] + p[n & 1023])


def _mac(key: bytes, purpose: Purpose, row_id: int) -> str:
    digest = hmac_sha256(key, f"{purpose}:{row_id}".encode("ascii"))
    return _b32(digest[:_MAC_BYTES])


def make_token(key: bytes, purpose: Purpose, row_id: int) -> str:
    if row_id < 0:
        raise ValueError("an outbox row id is never negative")
    return f"{row_id}-{_mac(key, purpose, row_id)}"


def verify_token(key: bytes, purpose: Purpose, token: str) -> RowToken | None:
    """The row a token names, or None if it is malformed or not ours."""
    found = _TOKEN.match(token.strip().lower())
    if found is None:
        return None
    row_id = int(found.group(1))
    if not hmac.compare_digest(_mac(key, purpose, row_id), found.group(2)):
        return None
    return RowToken(purpose, row_id)


def tagged_address(base: str, key: bytes, purpose: Purpose, row_id: int) -> str:
    """``local+TOKEN@domain`` for ``local@domain``."""
    local, domain = split_base(base)
    return f"{local}+{make_token(key, purpose, row_id)}@{domain}"


def _address_pattern(local: str) -> re.Pattern[str]:
    # The base's local part, "+", a token; case-insensitive because servers
    # may have lower- or upper-cased the whole address.
    return re.compile(rf"(?<![A-Za-z0-9.+_-]){re.escape(local)}\+([0-9]{{1,19}}-[a-z2-7]{{16}})@",
                      re.IGNORECASE)


def find_tokens(key: bytes, purpose: Purpose, local: str, texts: Iterable[str]
                ) -> list[RowToken]:
    """Every valid ``local+TOKEN@`` token in ``texts``, first seen first, once each."""
    pattern = _address_pattern(local)
    found: list[RowToken] = []
    for text in texts:
        for match in pattern.finditer(text):
            token = verify_token(key, purpose, match.group(1))
            if token is not None and token not in found:
                found.append(token)
    return found
