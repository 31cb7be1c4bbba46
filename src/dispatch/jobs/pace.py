"""The pace of a worker: a token bucket shared by its lanes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


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
        """A throttled answer halves the pace for the rest of this run."""
        with self.lock:
            if self.rate > 0:
                self.rate = max(floor, self.rate * factor)
