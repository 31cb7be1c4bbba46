"""Sending limits: the job engine's token bucket for the rate, and hourly/daily caps.

The bucket paces messages across every connection of one worker (the
provider counts messages, not connections). Caps are counted in the store —
rows sent in the last hour/day plus rows in flight — so they hold across
restarts and across workers sharing one database.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, or_, select

from dispatch.jobs.pace import TokenBucket
from dispatch.jobs.states import JobStatus
from dispatch.store.engine import Store
from dispatch.store.schema import outbox


def used_since(store: Store, since: datetime) -> int:
    """Messages sent since ``since`` plus those in flight right now."""
    q = select(func.count()).select_from(outbox).where(or_(
        (outbox.c.status == JobStatus.SENT.value) & (outbox.c.finished_at >= since),
        outbox.c.status == JobStatus.SENDING.value))
    with store.read() as conn:
        return int(conn.execute(q).scalar_one())


def allowance(store: Store, now: datetime, hourly: int, daily: int) -> int | None:
    """How many more messages the caps allow now (None: no cap)."""
    left: int | None = None
    for cap, window in ((hourly, timedelta(hours=1)), (daily, timedelta(days=1))):
        if cap > 0:
            room = max(0, cap - used_since(store, now - window))
            left = room if left is None else min(left, room)
    return left


__all__ = ["TokenBucket", "allowance", "used_since"]
