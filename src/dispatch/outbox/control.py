"""Editions as a whole: counts that reconcile, pause/resume/cancel/retry, and
the error budget.

Counts are derived from the rows themselves (grouped by status), and the
total is recorded once at queue time, so ``queued = sent + failed +
suppressed + cancelled + pending`` can be checked at any moment, including
while workers are sending.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, func, select, update

from dispatch.errors import InputError
from dispatch.jobs import control
from dispatch.jobs.control import Target
from dispatch.jobs.states import GroupState, JobStatus
from dispatch.outbox.kind import EMAIL
from dispatch.outbox.policy import RetryPolicy
from dispatch.store.engine import Store
from dispatch.store.schema import editions, outbox, outbox_sent, subscribers

BOUNCE_PREFIX = "hard bounce: "
"""Starts the detail of a row failed by a hard bounce (the subscriber is now bounced)."""


@dataclass(frozen=True, slots=True)
class EditionStatus:
    edition_id: str
    kind: str
    subject: str
    state: GroupState
    """sending | paused | cancelled | complete (nothing pending any more)."""
    note: str | None
    queued_at: datetime
    audience: tuple[str, ...]
    total: int
    sent: int = 0
    failed: int = 0
    suppressed: int = 0
    cancelled: int = 0
    queued: int = 0
    """Waiting (now or after a retry delay)."""
    sending: int = 0
    """Leased by a worker right now."""

    @property
    def pending(self) -> int:
        return self.queued + self.sending

    @property
    def reconciles(self) -> bool:
        return self.total == (self.sent + self.failed + self.suppressed + self.cancelled
                              + self.pending)


def edition_statuses(store: Store, edition_id: str | None = None) -> list[EditionStatus]:
    e = editions
    q = select(e.c.edition_id, e.c.kind, e.c.subject, e.c.state, e.c.note, e.c.queued_at,
               e.c.audience, e.c.total).order_by(e.c.queued_at, e.c.edition_id)
    c = (select(outbox.c.edition_id, outbox.c.status, func.count())
         .group_by(outbox.c.edition_id, outbox.c.status))
    if edition_id is not None:
        q = q.where(e.c.edition_id == edition_id)
        c = c.where(outbox.c.edition_id == edition_id)
    with store.read() as conn:
        heads = conn.execute(q).all()
        counts: dict[str, dict[str, int]] = {}
        for eid, status, n in conn.execute(c):
            counts.setdefault(eid, {})[status] = n
        if store.is_sqlite:
            # Accepted messages a batch has not settled yet are sent already.
            for eid, n in conn.execute(_journaled(edition_id)):
                moved = counts.setdefault(eid, {})
                moved[JobStatus.SENDING] = moved.get(JobStatus.SENDING, 0) - n
                moved[JobStatus.SENT] = moved.get(JobStatus.SENT, 0) + n
    result = []
    for h in heads:
        n = counts.get(h.edition_id, {})
        pending = n.get(JobStatus.QUEUED, 0) + n.get(JobStatus.SENDING, 0)
        state = (GroupState.COMPLETE if pending == 0 and h.state == GroupState.SENDING
                 else GroupState(h.state))
        result.append(EditionStatus(
            h.edition_id, h.kind, h.subject, state, h.note, h.queued_at,
            tuple(json.loads(h.audience)), h.total, n.get(JobStatus.SENT, 0),
            n.get(JobStatus.FAILED, 0), n.get(JobStatus.SUPPRESSED, 0),
            n.get(JobStatus.CANCELLED, 0), n.get(JobStatus.QUEUED, 0),
            n.get(JobStatus.SENDING, 0)))
    return result


def _journaled(edition_id: str | None) -> Select[Any]:
    """Per edition, rows still leased whose message was accepted (``outbox_sent``)."""
    q = (select(outbox.c.edition_id, func.count())
         .select_from(outbox_sent.join(outbox, outbox.c.id == outbox_sent.c.row_id))
         .where(outbox.c.status == JobStatus.SENDING.value,
                outbox.c.lease_owner == outbox_sent.c.token)
         .group_by(outbox.c.edition_id))
    return q if edition_id is None else q.where(outbox.c.edition_id == edition_id)


def edition_status(store: Store, edition_id: str) -> EditionStatus:
    found = edition_statuses(store, edition_id)
    if not found:
        raise InputError(f"no queued edition {edition_id!r} (see `dispatch queue`)")
    return found[0]


def edition_target(edition_id: str) -> Target:
    """An edition as a job-engine control target (its outbox rows, its group row)."""
    return Target(EMAIL, edition_id, outbox.c.edition_id == edition_id, edition_id)


def pause(store: Store, edition_id: str, now: datetime) -> bool:
    """Stop claiming this edition's rows; rows already leased finish normally."""
    edition_status(store, edition_id)  # a clear error for an unknown id
    return control.pause(store, edition_target(edition_id), now)


def resume(store: Store, edition_id: str, now: datetime) -> bool:
    """Claim again. Sent rows stay sent, so nobody gets a second copy."""
    edition_status(store, edition_id)
    return control.resume(store, edition_target(edition_id), now)


def cancel(store: Store, edition_id: str, now: datetime) -> int:
    """Stop the edition for good: every waiting row becomes cancelled."""
    edition_status(store, edition_id)
    return control.cancel(store, edition_target(edition_id), now, "edition cancelled")


def retry_failed(store: Store, edition_id: str, now: datetime) -> int:
    """Re-queue failed rows of subscribers still active (never a bounced one).

    A cancelled edition is refused: its rows would wait for ever. A paused
    edition stays paused (the rows wait for ``resume``): retrying must not
    quietly undo the operator's or the error budget's decision.
    """
    state = edition_status(store, edition_id).state
    if state is GroupState.CANCELLED:
        raise InputError(f"{edition_id} is cancelled, so re-queued rows would never be sent; "
                         "send the article again under a new --edition-id instead")
    active = select(subscribers.c.id).where(subscribers.c.status == "active")
    return control.retry(store, edition_target(edition_id), now,
                         only=outbox.c.subscriber_id.in_(active))


def failure_reasons(store: Store, edition_id: str, limit: int = 3) -> list[tuple[str, int]]:
    """The commonest reasons this edition's rows failed, with counts, commonest first."""
    q = select(outbox.c.detail).where(outbox.c.edition_id == edition_id,
                                      outbox.c.status == JobStatus.FAILED.value)
    with store.read() as conn:
        details = conn.execute(q).scalars().all()
    # Servers quote the recipient in their reply ("<ann@…>: User unknown"):
    # without it, ten bounces for the same reason count as one reason.
    from dispatch.values.address import mask_addresses  # email-validator: slow to import

    counts = Counter(mask_addresses(d) if d else "no reason recorded" for d in details)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]


def enforce_error_budget(conn: Connection, edition_id: str, now: datetime,
                         policy: RetryPolicy) -> bool:
    """Pause the edition if its failure share passed the budget; True if paused.

    Temporary failures never count: only rows that ended failed do, and not
    hard bounces — dead addresses are the list's hygiene, not a broken send,
    and an old list with 15% of them must still go out. Only rows finished
    since the edition was queued, resumed or retried count (``updated_at``),
    so a resume gets a fresh window instead of pausing again at once on the
    failures that caused the first pause.
    """
    since = (select(editions.c.updated_at).where(editions.c.edition_id == edition_id)
             .scalar_subquery())
    is_failure = (outbox.c.status == JobStatus.FAILED.value) & ~func.coalesce(
        outbox.c.detail, "").startswith(BOUNCE_PREFIX, autoescape=True)
    finished, failed = (int(n) for n in conn.execute(
        select(func.count(), func.count().filter(is_failure))
        .where(outbox.c.edition_id == edition_id,
               outbox.c.status.in_((JobStatus.SENT.value, JobStatus.FAILED.value)),
               outbox.c.finished_at >= since)).one())
    if finished < policy.error_budget_min or failed <= policy.error_budget * finished:
        return False
    note = (f"paused by the error budget: {failed} of {finished} rows finished since it "
            f"started or resumed failed (budget {policy.error_budget:.0%}, hard bounces not "
            f"counted); see the reasons with `dispatch queue -v`, fix the cause, then "
            f"`dispatch queue resume {edition_id}`")
    return bool(conn.execute(
        update(editions).where(editions.c.edition_id == edition_id,
                               editions.c.state == GroupState.SENDING.value)
        .values(state=GroupState.PAUSED.value, note=note, updated_at=now)).rowcount)
