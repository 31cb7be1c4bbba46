"""Email rows on the job engine: claim with the readers' addresses, the
per-send re-check, and what a bounce or a failure means for an edition.

The lease itself (claim, fenced settle, renew, reap) is
:mod:`dispatch.jobs.lease`, shared with social posts; this module adds only
what is email's own: the claim reads each reader's address and suppresses
readers no longer active, a hard bounce marks the subscriber bounced, and a
failure may spend the edition's error budget.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, bindparam, literal_column, null, select, update

from dispatch.jobs import lease as jobs
from dispatch.jobs.states import JobStatus, Outcome
from dispatch.outbox.control import BOUNCE_PREFIX, enforce_error_budget
from dispatch.outbox.kind import EMAIL
from dispatch.outbox.policy import RetryPolicy
from dispatch.store.engine import Store, chunks
from dispatch.store.schema import UTCDateTime, editions, outbox, subscribers
from dispatch.subscribers.repository import set_status

Verdict = Literal["send", "suppressed", "cancelled"]
new_token = jobs.new_token


@dataclass(frozen=True, slots=True)
class ClaimedRow:
    id: int
    edition_id: str
    subscriber_id: int
    email: str
    name: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Claim:
    token: str
    lease_until: datetime
    rows: tuple[ClaimedRow, ...]
    suppressed: int
    """Rows claimed but found not active: recorded as suppressed at once."""


@dataclass(frozen=True, slots=True)
class RowResult:
    row_id: int
    subscriber_id: int
    outcome: Outcome
    detail: str | None = None
    attempts: int = 1
    """The row's attempt count after its claim (from :class:`ClaimedRow`)."""

    @property
    def job_id(self) -> int:
        return self.row_id


_PEOPLE = select(subscribers.c.id, subscribers.c.email, subscribers.c.name,
                 subscribers.c.status).where(subscribers.c.id.in_(bindparam("ids",
                                                                            expanding=True)))
_VERDICT = select(subscribers.c.status,
                  select(editions.c.state).where(editions.c.edition_id == bindparam("eid"))
                  .scalar_subquery()).where(subscribers.c.id == bindparam("id"))
_INACTIVE = "subscriber no longer active"


def _positional(compiled: Any) -> tuple[str, Callable[[dict[str, Any]], Any]]:
    """A compiled statement's SQL and how to order its parameters for the DBAPI."""
    order = compiled.positiontup  # None for named parameter styles
    if order is None:
        return compiled.string, lambda values: values
    return compiled.string, lambda values: [values[k] for k in order]


def claim(store: Store, owner: str, now: datetime, limit: int, policy: RetryPolicy) -> Claim:
    """Lease up to ``limit`` due rows of editions that are sending."""
    token = new_token(owner)
    until = now + timedelta(seconds=policy.lease_seconds)
    with store.write() as conn:
        leased = jobs.claim(conn, EMAIL, postgres=store.is_postgres, token=token, now=now,
                            until=until, limit=limit)
        if not leased:
            return Claim(token, until, (), 0)
        people = _people(conn, [r.subscriber_id for r in leased])
        rows: list[ClaimedRow] = []
        inactive: list[int] = []
        for r in sorted(leased, key=lambda r: r.id):
            person = people.get(r.subscriber_id)
            if person is None or person[2] != "active":
                inactive.append(r.id)
                continue
            rows.append(ClaimedRow(r.id, r.edition_id, r.subscriber_id, person[0], person[1],
                                   r.attempts))
        jobs.finish(conn, EMAIL, token, inactive, JobStatus.SUPPRESSED, now, _INACTIVE)
    return Claim(token, until, tuple(rows), len(inactive))


def _people(conn: Connection, ids: Sequence[int]) -> dict[int, tuple[str, str, str]]:
    found: dict[int, tuple[str, str, str]] = {}
    for part in chunks(list(ids)):
        for sid, email, name, status in conn.execute(_PEOPLE, {"ids": list(part)}):
            found[sid] = (email, name, status)
    return found


class VerdictReader:
    """The check made just before each send, on a connection of its own.

    One indexed lookup: the subscriber must still be active (an unsubscribe
    after the claim is honoured) and the edition must not have been
    cancelled meanwhile. It runs once per message, so it skips what a
    SQLAlchemy transaction costs around it (pool checkout, BEGIN, COMMIT;
    together several times the lookup itself): each sender lane keeps one
    DBAPI connection in autocommit mode, where every statement sees what was
    committed before it began.
    """

    def __init__(self, store: Store) -> None:
        self._raw = store.engine.raw_connection()
        self._postgres = store.is_postgres
        if self._postgres:
            # (SQLite connections are already in autocommit: see store.engine.)
            self._raw.dbapi_connection.autocommit = True  # type: ignore[union-attr]
        compiled = _VERDICT.compile(dialect=store.engine.dialect)
        self._sql = compiled.string
        self._order = compiled.positiontup  # None for named parameter styles
        self._cursor = self._raw.cursor()

    def __call__(self, subscriber_id: int, edition_id: str) -> Verdict:
        values = {"id": subscriber_id, "eid": edition_id}
        params: Any = values if self._order is None else [values[k] for k in self._order]
        self._cursor.execute(self._sql, params)
        found = self._cursor.fetchone()
        if found is None or found[0] != "active":
            return "suppressed"
        return "cancelled" if found[1] == "cancelled" else "send"

    def close(self) -> None:
        self._cursor.close()
        if self._postgres:
            # Back to the pool as SQLAlchemy expects its connections.
            self._raw.dbapi_connection.autocommit = False  # type: ignore[union-attr]
        self._raw.close()

    def discard(self) -> None:
        """Drop a connection that failed (a restarted server, say)."""
        with contextlib.suppress(Exception):
            self._raw.invalidate()


class VerdictReaders:
    """A few :class:`VerdictReader` shared by a worker's sender lanes.

    A lane borrows one for each check (microseconds), so sixteen lanes need
    not hold sixteen database connections — the engine's pool is sized for
    short checkouts.
    """

    def __init__(self, store: Store, size: int) -> None:
        self.store = store
        self.size = max(1, size)
        self._idle: list[VerdictReader] = []
        self._made = 0
        self._cond = threading.Condition()

    def __call__(self, subscriber_id: int, edition_id: str) -> Verdict:
        reader = self._take()
        try:
            verdict = reader(subscriber_id, edition_id)
        except Exception:
            reader.discard()
            # One fresh try: a database that restarted since the connection
            # was opened answers a new one.
            reader = VerdictReader(self.store)
            try:
                verdict = reader(subscriber_id, edition_id)
            except Exception:
                reader.discard()
                with self._cond:
                    self._made -= 1
                    self._cond.notify()
                raise
        with self._cond:
            self._idle.append(reader)
            self._cond.notify()
        return verdict

    def _take(self) -> VerdictReader:
        with self._cond:
            while not self._idle and self._made >= self.size:
                self._cond.wait()
            if self._idle:
                return self._idle.pop()
            self._made += 1
        try:
            return VerdictReader(self.store)
        except Exception:
            with self._cond:
                self._made -= 1
                self._cond.notify()
            raise

    def close(self) -> None:
        with self._cond:
            idle, self._idle = self._idle, []
        for reader in idle:
            reader.close()


_DETAILS = {Outcome.SUPPRESSED: _INACTIVE, Outcome.CANCELLED: "edition cancelled"}


def _with_detail(r: RowResult) -> RowResult:
    """Email's words for a verdict, and the mark that tells a bounce apart
    (the error budget leaves dead addresses out: list hygiene, not a broken send)."""
    outcome = Outcome(r.outcome)
    if outcome is Outcome.BOUNCED:
        return RowResult(r.row_id, r.subscriber_id, outcome, BOUNCE_PREFIX + (r.detail or ""),
                         r.attempts)
    if r.detail is None and outcome in _DETAILS:
        return RowResult(r.row_id, r.subscriber_id, outcome, _DETAILS[outcome], r.attempts)
    return r


def record(store: Store, token: str, results: Sequence[RowResult], now: datetime,
           policy: RetryPolicy, rng: random.Random) -> int:
    """Write a batch's outcomes in one transaction, fenced on the lease token.

    Returns how many rows were accepted; fewer than ``len(results)`` means
    the lease was lost (the rows were reaped and belong to someone else now).
    A hard bounce also marks the subscriber bounced; a failure may pause the
    edition (its error budget).
    """
    if not results:
        return 0
    settled = [_with_detail(r) for r in results]
    with store.write() as conn:
        accepted = jobs.settle(conn, EMAIL, token, settled, now, policy, rng)
        bounced = [r.subscriber_id for r in settled if r.outcome == Outcome.BOUNCED]
        if bounced:
            set_status(conn, bounced, "bounced", now, "hard bounce")
        failed = [r.row_id for r in settled if r.outcome in (Outcome.FAILED, Outcome.BOUNCED)]
        if failed:
            for eid in conn.execute(select(outbox.c.edition_id).where(
                    outbox.c.id.in_(failed)).distinct()).scalars():
                enforce_error_budget(conn, eid, now, policy)
    return accepted


def renew(store: Store, token: str, now: datetime, policy: RetryPolicy) -> int:
    """Extend a lease; 0 rows means it was lost and the worker must stop."""
    with store.write() as conn:
        return jobs.renew(conn, EMAIL, token, now + timedelta(seconds=policy.lease_seconds))


def reap(store: Store, now: datetime, policy: RetryPolicy) -> int:
    """Return rows whose lease expired (a crashed or stuck worker) to the queue."""
    with store.write() as conn:
        return jobs.reap(conn, EMAIL, now, policy)


def due_count(store: Store, now: datetime) -> int:
    """Rows a worker could claim at ``now`` (for progress bars and dry runs)."""
    with store.read() as conn:
        return jobs.due_count(conn, EMAIL, now)


def next_due(store: Store) -> datetime | None:
    """When the next waiting row of a sending edition becomes due."""
    with store.read() as conn:
        return jobs.next_due(conn, EMAIL)


_ACK = (update(outbox)
        .where(outbox.c.id == bindparam("rid"), outbox.c.lease_owner == bindparam("tok"),
               outbox.c.status == jobs.SENDING)
        .values(status=literal_column(f"'{JobStatus.SENT}'"), lease_owner=null(),
                lease_until=null(), finished_at=bindparam("now", type_=UTCDateTime()),
                detail=null()))


class AckWriter:
    """Marks accepted messages sent and makes the per-send checks, for groups of
    them, on one DBAPI connection of its own.

    The fast path of :func:`record` for the one outcome that must be durable
    before a connection sends its next message (a message the server took
    and we forgot would be sent again after a crash), and of
    :class:`VerdictReader`: both run once per message, where a SQLAlchemy
    transaction around them would cost several times the statements. Each
    row is fenced on its lease token like every other outcome, and its own
    rowcount says whether the lease was still ours. The checks run after the
    commit, so each sees everything committed before it began.
    """

    def __init__(self, store: Store) -> None:
        self._sqlite = store.is_sqlite
        self._raw = store.engine.raw_connection()
        dialect = store.engine.dialect
        self._ack = _positional(_ACK.compile(dialect=dialect))
        self._verdict = _positional(_VERDICT.compile(dialect=dialect))
        # The column type's own conversion for this backend (SQLite stores
        # text: the exact format matters, finished_at is compared as text).
        process = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
        self._when: Callable[[datetime], Any] = process or (lambda value: value)
        self._cursor = self._raw.cursor()

    def write(self, acks: Sequence[tuple[str, int]], now: datetime) -> list[bool]:
        """Commit ``(token, row id)`` pairs as sent; for each, whether it was still ours."""
        if not acks:
            return []
        when = self._when(now)
        cursor = self._cursor
        sql, params = self._ack
        kept: list[bool] = []
        if self._sqlite:
            # The pool's SQLite connections run in autocommit; BEGIN IMMEDIATE
            # takes the write lock now rather than failing on it later.
            cursor.execute("BEGIN IMMEDIATE")
        try:
            for token, row_id in acks:
                cursor.execute(sql, params({"rid": row_id, "tok": token, "now": when}))
                kept.append(cursor.rowcount == 1)
            if self._sqlite:
                cursor.execute("COMMIT")
            else:
                self._raw.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                if self._sqlite:
                    cursor.execute("ROLLBACK")
                else:
                    self._raw.rollback()
            raise
        return kept

    def check(self, wanted: Sequence[tuple[int, str]]) -> list[Verdict]:
        """The verdict for each ``(subscriber id, edition id)``, as :class:`VerdictReader`."""
        cursor = self._cursor
        sql, params = self._verdict
        verdicts: list[Verdict] = []
        for subscriber_id, edition_id in wanted:
            cursor.execute(sql, params({"id": subscriber_id, "eid": edition_id}))
            found = cursor.fetchone()
            if found is None or found[0] != "active":
                verdicts.append("suppressed")
            else:
                verdicts.append("cancelled" if found[1] == "cancelled" else "send")
        if not self._sqlite:
            self._raw.commit()  # end the read transaction: the next check sees new commits
        return verdicts

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._cursor.close()
            self._raw.close()

    def discard(self) -> None:
        """Drop a connection that failed (a restarted server, say)."""
        with contextlib.suppress(Exception):
            self._raw.invalidate()
