"""Sending limits: a token bucket for the rate, and hourly/daily caps.

The bucket paces messages across every connection of one worker (the
provider counts messages, not connections). Caps are counted in the store —
rows sent in the last hour/day plus rows in flight — so they hold across
restarts and across workers sharing one database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select

from dispatch.jobs.states import JobStatus
from dispatch.store.engine import Store
from dispatch.store.schema import outbox


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``; ``take`` blocks.

    The clock and sleep are injectable so tests run without waiting.
    """

    def __init__(self, rate: float, burst: float = 0, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = time.sleep) -> None:
        self.rate = rate
        self.capacity = max(1.0, burst or rate)
        self.tokens = self.capacity
        self.clock = clock
        self.sleep = sleep
        self.stamp = clock()
        self.lock = threading.Lock()

    def take(self) -> float:
        """Wait for one token; return how long we waited (0 when unlimited)."""
        if self.rate <= 0:
            return 0.0
        with self.lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            self.tokens -= 1
            # Reserve the token now and sleep outside the lock, so waiting
            # threads queue up fairly instead of all waking at once.
            wait = -self.tokens / self.rate if self.tokens < 0 else 0.0
        if wait > 0:
            self.sleep(wait)
        return wait

    def slow_down(self, factor: float = 0.5, floor: float = 0.1) -> None:
        """A throttling reply (421/451/452/454) halves the pace for this run."""
        with self.lock:
            if self.rate > 0:
                self.rate = max(floor, self.rate * factor)


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
