"""Operators' controls, the same for every kind: pause, resume, cancel, retry.

A *target* is what ``dispatch queue`` names: an email edition (a
:class:`~dispatch.jobs.kind.Group` of jobs, controlled through its one
group row) or a single social post (controlled through its own status).
Either way the rules are the same:

- **pause** stops claiming; jobs already leased finish normally.
- **resume** claims again; what was sent stays sent, so nobody gets a copy twice.
- **cancel** ends every waiting job as cancelled, for good.
- **retry** puts failed jobs back in the queue with their attempts reset
  (a paused target stays paused; a cancelled one is refused).

Pausing or cancelling a target with nothing waiting is refused: it would
only relabel a finished target (and a cancelled one can never be retried).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select, update

from dispatch.errors import InputError
from dispatch.jobs.kind import JobKind
from dispatch.jobs.states import GroupState, JobStatus
from dispatch.store.engine import Store


@dataclass(frozen=True, slots=True, eq=False)
class Target:
    """One controllable thing: the jobs ``where`` selects, of ``kind``."""

    kind: JobKind
    name: str
    """As the operator wrote it (an edition id, ``slug@network``)."""
    where: ColumnElement[bool]
    group_key: str | None = None
    """The group row's key, for kinds controlled by group."""


@dataclass(frozen=True, slots=True)
class TargetStatus:
    state: GroupState
    counts: Counter[str]

    @property
    def pending(self) -> int:
        return sum(self.counts[s] for s in (JobStatus.QUEUED, JobStatus.SENDING,
                                             JobStatus.PAUSED))


def status(store: Store, target: Target) -> TargetStatus:
    t = target.kind.table
    with store.read() as conn:
        counts: Counter[str] = Counter(dict(conn.execute(
            select(t.c.status, func.count()).where(target.where).group_by(t.c.status)).all()))
        group = target.kind.group
        stored: str | None = None
        if group is not None:
            stored = conn.execute(select(group.col(group.state)).where(
                group.col(group.key) == target.group_key)).scalar()
    pending = sum(counts[s] for s in (JobStatus.QUEUED, JobStatus.SENDING, JobStatus.PAUSED))
    if stored is not None and stored != GroupState.SENDING:
        state = GroupState(stored)
    elif counts[JobStatus.PAUSED]:
        state = GroupState.PAUSED
    elif pending:
        state = GroupState.SENDING
    elif stored is None and counts[JobStatus.CANCELLED] and not (
            counts[JobStatus.SENT] or counts[JobStatus.FAILED]):
        state = GroupState.CANCELLED
    else:
        state = GroupState.COMPLETE
    return TargetStatus(state, counts)


def _refuse_if_finished(store: Store, target: Target, action: str) -> None:
    found = status(store, target)
    if found.pending == 0:
        raise InputError(f"{target.name} has nothing waiting ({found.counts[JobStatus.SENT]} "
                         f"sent, {found.counts[JobStatus.FAILED]} failed), so there is nothing "
                         f"to {action}")


def _set_group(store: Store, target: Target, now: datetime, allowed: tuple[GroupState, ...],
               state: GroupState, note: str | None) -> bool:
    group = target.kind.group
    assert group is not None
    with store.write() as conn:
        return bool(conn.execute(
            update(group.table).where(group.col(group.key) == target.group_key,
                                      group.col(group.state).in_([s.value for s in allowed]))
            .values({group.state: state.value, group.note: note, group.updated: now})).rowcount)


def _move(store: Store, target: Target, now: datetime, old: tuple[JobStatus, ...],
          new: JobStatus, detail: str | None, **values: object) -> int:
    kind = target.kind
    t = kind.table
    extra: dict[str, object] = {"status": new.value, kind.detail: detail, **values}
    if new is JobStatus.CANCELLED:
        extra["finished_at"] = now
    with store.write() as conn:
        return int(conn.execute(update(t).where(target.where,
                                                t.c.status.in_([s.value for s in old]))
                                .values(extra)).rowcount)


def pause(store: Store, target: Target, now: datetime) -> bool:
    """Stop claiming the target's jobs; leased ones finish normally."""
    _refuse_if_finished(store, target, "pause")
    if target.kind.group is not None:
        return _set_group(store, target, now, (GroupState.SENDING,), GroupState.PAUSED,
                          "paused by operator")
    return bool(_move(store, target, now, (JobStatus.QUEUED,), JobStatus.PAUSED,
                      "paused by operator"))


def resume(store: Store, target: Target, now: datetime) -> bool:
    """Claim again. Sent jobs stay sent."""
    if target.kind.group is not None:
        return _set_group(store, target, now, (GroupState.PAUSED,), GroupState.SENDING, None)
    return bool(_move(store, target, now, (JobStatus.PAUSED,), JobStatus.QUEUED, None,
                      available_at=now))


def cancel(store: Store, target: Target, now: datetime, detail: str = "cancelled") -> int:
    """Stop for good: every waiting job becomes cancelled; how many."""
    _refuse_if_finished(store, target, "cancel")
    if target.kind.group is not None:
        _set_group(store, target, now, (GroupState.SENDING, GroupState.PAUSED),
                   GroupState.CANCELLED, "cancelled by operator")
    return _move(store, target, now, (JobStatus.QUEUED, JobStatus.PAUSED),
                 JobStatus.CANCELLED, detail)


def retry(store: Store, target: Target, now: datetime,
          only: ColumnElement[bool] | None = None) -> int:
    """Re-queue failed jobs (``only``: a kind's extra condition, e.g. the
    reader is still active); how many. A cancelled target is refused: its
    jobs would wait for ever."""
    if status(store, target).state is GroupState.CANCELLED:
        raise InputError(f"{target.name} is cancelled, so re-queued jobs would never be sent")
    where = target.where if only is None else target.where & only
    retried = Target(target.kind, target.name, where, target.group_key)
    n = _move(store, retried, now, (JobStatus.FAILED,), JobStatus.QUEUED, "retried by operator",
              attempts=0, available_at=now, finished_at=None)
    group = target.kind.group
    if n and group is not None:
        # A fresh window for whatever the kind counts since the last change
        # (the email error budget).
        with store.write() as conn:
            conn.execute(update(group.table).where(group.col(group.key) == target.group_key)
                         .values({group.updated: now}))
    return n
