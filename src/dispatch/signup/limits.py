"""Abuse limits kept in the database, so they hold across every ``dispatch
serve`` process sharing it, and the requester's network as it is recorded.

A limit is a fixed window per bucket: one ``INSERT … ON CONFLICT DO UPDATE
… RETURNING`` counts the hit and reads the count back atomically, on SQLite
and PostgreSQL alike, so two processes racing for the same bucket cannot
both see "first".
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, case, delete, literal, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from dispatch.store.schema import UTCDateTime, rate_limits

HOUR = timedelta(hours=1)


def network_of(host: str | None) -> str | None:
    """The requester's network as stored in consent records and used for the
    per-IP limit: an IPv4 address truncated to its /24 (``203.0.113.0/24``),
    an IPv6 address to its /48. Enough to spot abuse from one network, not
    enough to name a household. None when there is no usable address."""
    if not host:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def address_bucket(key: bytes, identity: str) -> str:
    """The confirmation-limit bucket of an address: a keyed hash, so the
    limits table holds no address."""
    digest = hmac.new(key, f"confirm-limit:{identity}".encode(), hashlib.sha256).hexdigest()
    return f"confirm:{digest[:48]}"


@dataclass(frozen=True, slots=True)
class Hit:
    allowed: bool
    retry_after: int
    """Seconds until the window resets (0 when allowed)."""


def hit(conn: Connection, bucket: str, limit: int, now: datetime,
        window: timedelta = HOUR) -> Hit:
    """Count one hit on ``bucket``; allowed while the window holds at most ``limit``."""
    cutoff = now - window
    stale = rate_limits.c.window_start <= cutoff
    make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    upsert = make(rate_limits).values(bucket=bucket, window_start=now, hits=1)
    stmt = upsert.on_conflict_do_update(
        index_elements=[rate_limits.c.bucket],
        set_={"hits": case((stale, 1), else_=rate_limits.c.hits + 1),
              "window_start": case((stale, literal(now, UTCDateTime())),
                                      else_=rate_limits.c.window_start)},
    ).returning(rate_limits.c.hits, rate_limits.c.window_start)
    hits, started = conn.execute(stmt).one()
    if hits <= limit:
        return Hit(True, 0)
    # Rounded up, never past the window: a hit in the window's first
    # microsecond is told to wait the whole window, not a second more.
    return Hit(False, max(1, math.ceil((started + window - now).total_seconds())))


def give_back(conn: Connection, bucket: str) -> None:
    """Undo one hit on ``bucket``: the thing it counted did not happen (a
    confirmation the transport refused), so it must not stop the next try."""
    conn.execute(update(rate_limits).where(rate_limits.c.bucket == bucket,
                                           rate_limits.c.hits > 0)
                 .values(hits=rate_limits.c.hits - 1))


def forget_old(conn: Connection, now: datetime, window: timedelta = HOUR) -> int:
    """Drop windows that ended: they no longer limit anything."""
    return conn.execute(delete(rate_limits).where(
        rate_limits.c.window_start <= now - window)).rowcount
