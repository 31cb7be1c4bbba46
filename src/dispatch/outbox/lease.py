"""Claiming rows under a lease, and recording what happened to them.

Every function here is one short write transaction; nothing stays open while
a worker talks to a mail server (FIELD-NOTES 5.1). A claim stamps rows with a
fresh random lease token; every later write about those rows is fenced on
that token, so a worker whose lease expired (and whose rows were reclaimed)
cannot mark anything sent.
"""

from __future__ import annotations

import contextlib
import random
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

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

from dispatch.outbox.control import BOUNCE_PREFIX, enforce_error_budget
from dispatch.outbox.policy import RetryPolicy
from dispatch.store.engine import Store, chunks
from dispatch.store.schema import UTCDateTime, editions, outbox, subscribers
from dispatch.subscribers.repository import set_status

# Status literals written into the SQL, not bound as parameters: a partial
# index (WHERE status = 'queued') is only usable when the query says so
# literally (SQLite cannot match a bound parameter against it).
QUEUED: ColumnElement[str] = literal_column("'queued'")
SENDING: ColumnElement[str] = literal_column("'sending'")

Outcome = Literal["sent", "retry", "failed", "bounced", "suppressed", "cancelled", "release",
                  "handback"]
Verdict = Literal["send", "suppressed", "cancelled"]


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


def new_token(owner: str) -> str:
    return f"{owner[:60]}/{secrets.token_hex(6)}"


def _due_filter(now: datetime | ColumnElement[datetime]) -> tuple[ColumnElement[bool], ...]:
    # EXISTS, not edition_id IN (…): given an equality on edition_id, SQLite
    # picks the (edition, status) index and sorts every queued row of the
    # edition on each claim (O(n) per batch); this way it walks the partial
    # due index in order and stops at the batch size.
    sending = (select(editions.c.edition_id)
               .where(editions.c.edition_id == outbox.c.edition_id,
                      editions.c.state == "sending").exists())
    return (outbox.c.status == QUEUED, outbox.c.available_at <= now, sending)


# The hot statements are built once: constructing SQLAlchemy statements per
# call cost more than running them (~10 ms per claim of 100 on SQLite).
_UTC = UTCDateTime()


def _claim_statement(postgres: bool) -> Any:
    due = (select(outbox.c.id)
           .where(*_due_filter(bindparam("now", type_=_UTC)))
           .order_by(outbox.c.available_at, outbox.c.id)
           .limit(bindparam("limit", type_=Integer())))
    if postgres:
        # Without SKIP LOCKED every worker queues behind the oldest row.
        due = due.with_for_update(skip_locked=True)
    return (update(outbox).where(outbox.c.id.in_(due.scalar_subquery()))
            .values(status="sending", lease_owner=bindparam("token"),
                    lease_until=bindparam("until", type_=_UTC),
                    attempts=outbox.c.attempts + 1)
            .returning(outbox.c.id, outbox.c.edition_id, outbox.c.subscriber_id,
                       outbox.c.attempts))


_CLAIM = {False: _claim_statement(False), True: _claim_statement(True)}
_PEOPLE = select(subscribers.c.id, subscribers.c.email, subscribers.c.name,
                 subscribers.c.status).where(subscribers.c.id.in_(bindparam("ids",
                                                                            expanding=True)))
_VERDICT = select(subscribers.c.status,
                  select(editions.c.state).where(editions.c.edition_id == bindparam("eid"))
                  .scalar_subquery()).where(subscribers.c.id == bindparam("id"))
_FINISH = (update(outbox)
           .where(outbox.c.id.in_(bindparam("ids", expanding=True)),
                  outbox.c.lease_owner == bindparam("token"), outbox.c.status == SENDING)
           .values(status=bindparam("status"), lease_owner=None, lease_until=None,
                   finished_at=bindparam("now", type_=_UTC), detail=bindparam("detail")))


def claim(store: Store, owner: str, now: datetime, limit: int, policy: RetryPolicy) -> Claim:
    """Lease up to ``limit`` due rows of editions that are sending."""
    token = new_token(owner)
    until = now + timedelta(seconds=policy.lease_seconds)
    with store.write() as conn:
        # Read every RETURNING row before the commit (SQLite insists).
        leased = conn.execute(_CLAIM[store.is_postgres],
                              {"now": now, "limit": limit, "token": token, "until": until}
                              ).all()
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
        _finish(conn, token, inactive, "suppressed", now, "subscriber no longer active")
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


def _finish(conn: Connection, token: str, ids: Sequence[int], status: str, now: datetime,
            detail: str | None) -> int:
    done = 0
    for part in chunks(list(ids)):
        done += conn.execute(_FINISH, {"ids": list(part), "token": token, "status": status,
                                       "now": now, "detail": detail}).rowcount
    return done


def record(store: Store, token: str, results: Sequence[RowResult], now: datetime,
           policy: RetryPolicy, rng: random.Random) -> int:
    """Write a batch's outcomes in one transaction, fenced on the lease token.

    Returns how many rows were accepted; fewer than ``len(results)`` means
    the lease was lost (the rows were reaped and belong to someone else now).
    """
    if not results:
        return 0
    accepted = 0
    with store.write() as conn:
        sent = [r.row_id for r in results if r.outcome == "sent"]
        accepted += _finish(conn, token, sent, "sent", now, None)
        suppressed = [r.row_id for r in results if r.outcome == "suppressed"]
        accepted += _finish(conn, token, suppressed, "suppressed", now,
                            "subscriber no longer active")
        cancelled = [r.row_id for r in results if r.outcome == "cancelled"]
        accepted += _finish(conn, token, cancelled, "cancelled", now, "edition cancelled")
        retry: list[dict[str, object]] = []
        for r in results:
            if r.outcome not in ("retry", "release", "handback"):
                continue
            tries = r.attempts
            if r.outcome == "retry" and tries >= policy.max_attempts:
                accepted += _finish(conn, token, [r.row_id], "failed", now,
                                    f"gave up after {tries} attempts: {r.detail}")
                continue
            # A release (the server was unreachable, the message never left)
            # gives the attempt back: an outage is not the recipient's fault.
            # A handback (the worker is stopping) is due again at once, for
            # whichever worker is still running.
            due = now if r.outcome == "handback" else now + policy.backoff(tries, rng)
            retry.append({"rid": r.row_id, "tok": token, "at": due, "d": r.detail,
                          "back": 0 if r.outcome == "retry" else 1})
        if retry:
            accepted += conn.execute(
                update(outbox).where(outbox.c.id == bindparam("rid"),
                                     outbox.c.lease_owner == bindparam("tok"),
                                     outbox.c.status == "sending")
                .values(status="queued", lease_owner=None, lease_until=None,
                        available_at=bindparam("at"), detail=bindparam("d"),
                        attempts=outbox.c.attempts - bindparam("back")),
                retry).rowcount
        failed = [r for r in results if r.outcome in ("failed", "bounced")]
        for r in failed:
            # A bounce is told apart by its detail, which the error budget
            # leaves out (dead addresses are list hygiene, not a broken send).
            detail = BOUNCE_PREFIX + (r.detail or "") if r.outcome == "bounced" else r.detail
            accepted += _finish(conn, token, [r.row_id], "failed", now, detail)
        bounced = [r.subscriber_id for r in results if r.outcome == "bounced"]
        if bounced:
            set_status(conn, bounced, "bounced", now, "hard bounce")
        if failed:
            for eid in conn.execute(select(outbox.c.edition_id).where(
                    outbox.c.id.in_([r.row_id for r in failed])).distinct()).scalars():
                enforce_error_budget(conn, eid, now, policy)
    return accepted


def renew(store: Store, token: str, now: datetime, policy: RetryPolicy) -> int:
    """Extend a lease; 0 rows means it was lost and the worker must stop."""
    with store.write() as conn:
        return conn.execute(update(outbox).where(outbox.c.lease_owner == token,
                                                 outbox.c.status == "sending")
                            .values(lease_until=now + timedelta(seconds=policy.lease_seconds))
                            ).rowcount


def reap(store: Store, now: datetime, policy: RetryPolicy) -> int:
    """Return rows whose lease expired (a crashed or stuck worker) to the queue.

    The attempt the dead worker spent still counts, so a row that keeps
    killing workers ends as failed instead of looping for ever.
    """
    expired = (outbox.c.status == SENDING) & (outbox.c.lease_until < now)
    with store.write() as conn:
        given_up = conn.execute(
            update(outbox).where(expired, outbox.c.attempts >= policy.max_attempts)
            .values(status="failed", lease_owner=None, lease_until=None, finished_at=now,
                    detail="lease expired on the last attempt")).rowcount
        requeued = conn.execute(
            update(outbox).where(expired)
            .values(status="queued", lease_owner=None, lease_until=None, available_at=now,
                    detail="lease expired; requeued")).rowcount
    return int(given_up) + int(requeued)


def due_count(store: Store, now: datetime) -> int:
    """Rows a worker could claim at ``now`` (for progress bars and dry runs)."""
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(outbox)
                                .where(*_due_filter(now))).scalar_one())


def next_due(store: Store) -> datetime | None:
    """When the next waiting row of a sending edition becomes due."""
    with store.read() as conn:
        return conn.execute(select(func.min(outbox.c.available_at)).where(
            outbox.c.status == "queued",
            outbox.c.edition_id.in_(select(editions.c.edition_id)
                                    .where(editions.c.state == "sending")))).scalar()
