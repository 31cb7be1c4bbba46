"""The one retry rule every job kind follows: pure, so it is tested directly."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    """Attempts (claims that reached the server) before a job fails for good."""
    base_seconds: float = 30.0
    max_seconds: float = 3600.0
    lease_seconds: float = 300.0
    """Lease length: well over the time to work through one claimed batch."""
    jitter: bool = True
    """Spread retries randomly (a mail campaign's thousands of rows); off for
    kinds with a handful of jobs whose delays people read (social posts)."""
    error_budget: float = 0.1
    """Pause an email edition when more than this share of its finished rows failed…"""
    error_budget_min: int = 100
    """…once at least this many rows have finished (small samples mislead)."""

    def backoff(self, attempts: int, rng: random.Random | None = None) -> timedelta:
        """Exponential backoff capped at ``max_seconds``; with jitter, "equal
        jitter" (half fixed, half random), so retries spread out but never
        collapse to zero delay."""
        cap = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempts - 1))
        if not self.jitter or rng is None:
            return timedelta(seconds=cap)
        return timedelta(seconds=cap / 2 + rng.uniform(0, cap / 2))

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)
