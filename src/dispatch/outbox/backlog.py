"""What is left in the outbox after a delivery run, and when it moves again.

A burst (``worker --burst``, ``send --deliver``) that leaves rows behind did
not do what it was asked; the CLI says what is left from this and exits 75
(EX_TEMPFAIL: try again later).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from dispatch.jobs.states import JobStatus
from dispatch.outbox.kind import EMAIL
from dispatch.store.engine import Store
from dispatch.store.schema import outbox


@dataclass(frozen=True, slots=True)
class Backlog:
    """Pending rows of editions that are sending (paused editions are held
    on purpose and are not counted)."""

    waiting: int
    """Queued rows, due now or waiting for a retry."""
    next_due: datetime | None
    """When the earliest waiting row becomes due."""
    leased: int
    """Rows claimed by a worker (perhaps one that was killed) and not settled."""
    lease_ends: datetime | None
    """When the last of those leases runs out: then any worker retries them."""
    owners: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self.waiting == 0 and self.leased == 0


def email_backlog(store: Store) -> Backlog:
    t = outbox
    sending = EMAIL.due()
    with store.read() as conn:
        waiting, next_due = conn.execute(
            select(func.count(), func.min(t.c.available_at))
            .where(t.c.status == JobStatus.QUEUED.value, *sending)).one()
        leased, lease_ends = conn.execute(
            select(func.count(), func.max(t.c.lease_until))
            .where(t.c.status == JobStatus.SENDING.value, *sending)).one()
        # A lease token is "owner/random": people want the owner (host:pid).
        owners = tuple(sorted({o.rsplit("/", 1)[0] for o in conn.execute(
            select(t.c.lease_owner).distinct()
            .where(t.c.status == JobStatus.SENDING.value, *sending)).scalars() if o}))
    return Backlog(int(waiting), next_due if waiting else None, int(leased),
                   lease_ends if leased else None, owners)
