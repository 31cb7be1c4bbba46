"""Claim under a lease, renew, settle, reap: the one implementation for every kind.

::

    queued --claim(token, lease_until)--> sending --settle, fenced on token--> sent | failed
       ^                                     |                                 | suppressed
       |                                     |                                 | cancelled
       |                                     '-- retry / release / handback --> queued (later)
       '---- reap: lease_until passed (the worker died); the attempt counts -----'

Every function runs one short statement batch on a connection the caller
holds inside ``store.write()`` (so a kind can add its own writes to the
same transaction); nothing here stays open while a worker talks to a
server. A claim stamps its jobs with a fresh random token: every later
write is fenced on ``lease_owner = token AND status = 'sending'``, so a
worker whose lease expired (and whose jobs were claimed again) can mark
nothing. PostgreSQL claims with ``FOR UPDATE SKIP LOCKED`` (workers never
queue behind each other's rows); SQLite serialises claimers with
``BEGIN IMMEDIATE`` (see :mod:`dispatch.store.engine`).

Statements are built once per kind and backend and cached: building a
SQLAlchemy statement costs more than running it on SQLite.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    bindparam,
    func,
    literal_column,
    select,
    update,
)

from dispatch.jobs.kind import JobKind
from dispatch.jobs.policy import RetryPolicy
from dispatch.jobs.states import JobStatus, Outcome
from dispatch.store.engine import chunks
from dispatch.store.schema import UTCDateTime

# Status literals written into the SQL, not bound as parameters: a partial
# index (WHERE status = 'queued') is only usable when the query says so
# literally (SQLite cannot match a bound parameter against it).
QUEUED: ColumnElement[str] = literal_column(f"'{JobStatus.QUEUED}'")
SENDING: ColumnElement[str] = literal_column(f"'{JobStatus.SENDING}'")
_UTC = UTCDateTime()


class Settleable(Protocol):
    """What a worker reports for one job (``RowResult`` for email, for example)."""

    @property
    def job_id(self) -> int: ...
    @property
    def outcome(self) -> Outcome | str: ...
    @property
    def detail(self) -> str | None: ...
    @property
    def attempts(self) -> int: ...


@dataclass(frozen=True, slots=True)
class JobResult:
    job_id: int
    outcome: Outcome
    detail: str | None = None
    attempts: int = 1
    """The job's attempt count after its claim."""
    retry_after: float | None = None
    """Seconds the server asked for; wins over the policy's backoff."""


def new_token(owner: str) -> str:
    """A lease token: the owner's name (for people) and a random part (for fencing,
    so a worker restarted under the same name does not inherit its old leases)."""
    return f"{owner[:60]}/{secrets.token_hex(6)}"


_cache: dict[tuple[str, str, bool], Any] = {}


def _cached(kind: JobKind, name: str, postgres: bool, build: Callable[[], Any]) -> Any:
    key = (kind.name, name, postgres)
    found = _cache.get(key)
    if found is None:
        found = _cache[key] = build()
    return found


def due_filter(kind: JobKind, now: Any) -> tuple[ColumnElement[bool], ...]:
    return (kind.col("status") == QUEUED, kind.col("available_at") <= now, *kind.due())


def _claim_statement(kind: JobKind, postgres: bool) -> Any:
    t = kind.table
    due = (select(t.c.id).where(*due_filter(kind, bindparam("now", type_=_UTC)))
           .order_by(t.c.available_at, t.c.id)
           .limit(bindparam("limit", type_=Integer())))
    if postgres:
        # Without SKIP LOCKED every worker queues behind the oldest row.
        due = due.with_for_update(skip_locked=True)
    return (update(t).where(t.c.id.in_(due.scalar_subquery()))
            .values(status=JobStatus.SENDING.value, lease_owner=bindparam("token"),
                    lease_until=bindparam("until", type_=_UTC), attempts=t.c.attempts + 1)
            .returning(*(t.c[name] for name in kind.returning)))


def claim(conn: Connection, kind: JobKind, *, postgres: bool, token: str, now: datetime,
          until: datetime, limit: int, **params: Any) -> list[Any]:
    """Lease up to ``limit`` due jobs to ``token``; the rows named by ``kind.returning``.

    Every returned row is read before the caller commits (SQLite insists).
    """
    statement = _cached(kind, "claim", postgres, lambda: _claim_statement(kind, postgres))
    return list(conn.execute(statement, {"now": now, "limit": limit, "token": token,
                                         "until": until, **params}).all())


def _finish_statement(kind: JobKind) -> Any:
    t = kind.table
    return (update(t).where(t.c.id.in_(bindparam("ids", expanding=True)),
                            t.c.lease_owner == bindparam("token"), t.c.status == SENDING)
            .values({"status": bindparam("status"), "lease_owner": None, "lease_until": None,
                     "finished_at": bindparam("now", type_=_UTC),
                     kind.detail: bindparam("detail")}))


def finish(conn: Connection, kind: JobKind, token: str, ids: Sequence[int], status: JobStatus,
           now: datetime, detail: str | None, **values: Any) -> int:
    """End leased jobs in ``status``, fenced on ``token``; how many were still ours.

    ``values`` sets kind-specific columns as well (a social post's remote id).
    """
    if not ids:
        return 0
    if values:
        t = kind.table
        return int(conn.execute(
            update(t).where(t.c.id.in_(list(ids)), t.c.lease_owner == token,
                            t.c.status == SENDING)
            .values({"status": status.value, "lease_owner": None, "lease_until": None,
                     "finished_at": now, kind.detail: kind.clip(detail), **values})).rowcount)
    statement = _cached(kind, "finish", False, lambda: _finish_statement(kind))
    done = 0
    for part in chunks(list(ids)):
        done += conn.execute(statement, {"ids": list(part), "token": token,
                                         "status": status.value, "now": now,
                                         "detail": kind.clip(detail)}).rowcount
    return done


def _requeue_statement(kind: JobKind) -> Any:
    t = kind.table
    return (update(t).where(t.c.id == bindparam("rid"), t.c.lease_owner == bindparam("tok"),
                            t.c.status == SENDING)
            .values({"status": JobStatus.QUEUED.value, "lease_owner": None, "lease_until": None,
                     "available_at": bindparam("at", type_=_UTC), kind.detail: bindparam("d"),
                     "attempts": t.c.attempts - bindparam("back")}))


def settle(conn: Connection, kind: JobKind, token: str, results: Sequence[Settleable],
           now: datetime, policy: RetryPolicy, rng: random.Random | None = None) -> int:
    """Write a batch's outcomes, fenced on ``token``; how many were accepted.

    Fewer than ``len(results)`` means the lease was lost: those jobs were
    reaped and belong to another worker now. A ``retry`` past the policy's
    ``max_attempts`` fails for good; a ``release`` (the server was never
    reached) gives its attempt back, as does a ``handback`` (due at once:
    this worker is stopping). A bounced job ends as failed; what a bounce
    means for the recipient is the kind's business.
    """
    if not results:
        return 0
    accepted = 0
    by_status: dict[tuple[JobStatus, str | None], list[int]] = {}
    retry: list[dict[str, object]] = []
    for r in results:
        outcome = Outcome(r.outcome)
        if outcome in (Outcome.RETRY, Outcome.RELEASE, Outcome.HANDBACK):
            tries = r.attempts
            if outcome is Outcome.RETRY and tries >= policy.max_attempts:
                by_status.setdefault((JobStatus.FAILED, kind.clip(
                    f"gave up after {tries} attempts: {r.detail}")), []).append(r.job_id)
                continue
            wait = getattr(r, "retry_after", None)
            if outcome is Outcome.HANDBACK:
                due = now
            elif wait is not None:
                due = now + _seconds(wait)
            else:
                due = now + policy.backoff(tries, rng)
            retry.append({"rid": r.job_id, "tok": token, "at": due, "d": kind.clip(r.detail),
                          "back": 0 if outcome is Outcome.RETRY else 1})
            continue
        status, detail = _FINAL[outcome], r.detail
        if outcome in (Outcome.SENT,):
            detail = None
        elif detail is None:
            detail = _DEFAULT_DETAIL.get(outcome)
        by_status.setdefault((status, detail), []).append(r.job_id)
    for (status, detail), ids in by_status.items():
        accepted += finish(conn, kind, token, ids, status, now, detail)
    if retry:
        statement = _cached(kind, "requeue", False, lambda: _requeue_statement(kind))
        accepted += conn.execute(statement, retry).rowcount
    return accepted


def requeue(conn: Connection, kind: JobKind, token: str, job_id: int, at: datetime,
            detail: str | None, *, give_back: bool = False) -> bool:
    """Put one leased job back in the queue, due at ``at``, fenced on ``token``.

    ``give_back`` returns the attempt (the work never started)."""
    statement = _cached(kind, "requeue", False, lambda: _requeue_statement(kind))
    return bool(conn.execute(statement, {"rid": job_id, "tok": token, "at": at,
                                         "d": kind.clip(detail),
                                         "back": 1 if give_back else 0}).rowcount)


_FINAL = {Outcome.SENT: JobStatus.SENT, Outcome.FAILED: JobStatus.FAILED,
          Outcome.BOUNCED: JobStatus.FAILED, Outcome.SUPPRESSED: JobStatus.SUPPRESSED,
          Outcome.CANCELLED: JobStatus.CANCELLED}
_DEFAULT_DETAIL = {Outcome.SUPPRESSED: "subscriber no longer active",
                   Outcome.CANCELLED: "cancelled"}


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=max(0.0, value))


def renew(conn: Connection, kind: JobKind, token: str, until: datetime) -> int:
    """Extend a lease; 0 jobs means it was lost and the worker must stop."""
    t = kind.table
    return int(conn.execute(update(t).where(t.c.lease_owner == token, t.c.status == SENDING)
                            .values(lease_until=until)).rowcount)


def reap(conn: Connection, kind: JobKind, now: datetime, policy: RetryPolicy, *,
         limit: int | None = None, scope: Sequence[ColumnElement[bool]] = (),
         postgres: bool = False) -> int:
    """Return jobs whose lease expired (a crashed or stuck worker) to the queue.

    The attempt the dead worker spent still counts, so a job that keeps
    killing workers ends as failed instead of looping for ever. With
    ``limit`` (and ``scope``), only that many of the longest-expired jobs
    are taken back: a claimer reaping just what it is about to claim leaves
    the other stalled worker's leases alone until somebody needs them.
    """
    t = kind.table
    expired = [t.c.status == SENDING, t.c.lease_until < now, *scope]
    if limit is not None:
        pick = (select(t.c.id).where(*expired).order_by(t.c.lease_until, t.c.id)
                .limit(limit))
        if postgres:
            pick = pick.with_for_update(skip_locked=True)
        ids = list(conn.execute(pick).scalars())
        if not ids:
            return 0
        expired = [t.c.id.in_(ids), t.c.status == SENDING, t.c.lease_until < now]
    given_up = conn.execute(
        update(t).where(*expired, t.c.attempts >= policy.max_attempts)
        .values({"status": JobStatus.FAILED.value, "lease_owner": None, "lease_until": None,
                 "finished_at": now, kind.detail: "lease expired on the last attempt"})).rowcount
    requeued = conn.execute(
        update(t).where(*expired)
        .values({"status": JobStatus.QUEUED.value, "lease_owner": None, "lease_until": None,
                 "available_at": now, kind.detail: "lease expired; requeued"})).rowcount
    return int(given_up) + int(requeued)


def due_count(conn: Connection, kind: JobKind, now: datetime, **params: Any) -> int:
    """Jobs a worker could claim at ``now``."""
    return int(conn.execute(select(func.count()).select_from(kind.table)
                            .where(*due_filter(kind, now)), params).scalar_one())


def next_due(conn: Connection, kind: JobKind, **params: Any) -> datetime | None:
    """When the next waiting job becomes due (whatever its delay)."""
    t = kind.table
    value: datetime | None = conn.execute(
        select(func.min(t.c.available_at)).where(t.c.status == QUEUED, *kind.due()),
        params).scalar()
    return value
