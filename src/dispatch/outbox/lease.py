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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    Connection,
    Integer,
    String,
    bindparam,
    case,
    delete,
    literal_column,
    null,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from dispatch.jobs import lease as jobs
from dispatch.jobs.states import JobStatus, Outcome
from dispatch.outbox.control import BOUNCE_PREFIX, enforce_error_budget
from dispatch.outbox.kind import EMAIL
from dispatch.outbox.policy import RetryPolicy
from dispatch.store.engine import Store, chunks
from dispatch.store.schema import UTCDateTime, editions, outbox, outbox_sent, subscribers
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


_INACTIVE = "subscriber no longer active"


Prepared = tuple[str, Callable[[Sequence[Any]], Any]]
"""A compiled statement's SQL, and what turns its values (in the order the
statement's builder names them) into what the DBAPI takes."""


def _prepared(compiled: Any, names: Sequence[str]) -> Prepared:
    """``compiled``'s SQL, and its parameters taken from a flat sequence of
    values in the order of ``names`` (no dict per execution: a positional
    DBAPI gets a tuple picked by index, a named one a dict)."""
    order = compiled.positiontup  # None for named parameter styles
    if order is None:
        keys = tuple(names)
        return compiled.string, lambda values: dict(zip(keys, values, strict=True))
    where = {name: i for i, name in enumerate(names)}
    picks = tuple(where[name] for name in order)
    return compiled.string, lambda values: tuple([values[i] for i in picks])


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


_people_sql: dict[tuple[str, int], Prepared] = {}


def _people(conn: Connection, ids: Sequence[int]) -> dict[int, tuple[str, str, str]]:
    """Address, name and status of each subscriber in ``ids``, read on the
    claim's own transaction.

    The IN list has one parameter per id, padded to a power of two (the
    last id again), so a handful of statements, compiled once per backend,
    serve every batch size; they run on the DBAPI cursor, without an
    expanding parameter rendered and its values processed on every claim
    (which cost more than the query itself on SQLite)."""
    found: dict[int, tuple[str, str, str]] = {}
    dialect = conn.dialect
    cursor = conn.connection.cursor()
    try:
        for part in chunks(list(ids)):
            size = 1 << (len(part) - 1).bit_length()
            prepared = _people_sql.get((dialect.name, size))
            if prepared is None:
                names = [f"s{i}" for i in range(size)]
                statement = select(subscribers.c.id, subscribers.c.email, subscribers.c.name,
                                   subscribers.c.status).where(subscribers.c.id.in_(
                                       [bindparam(n, type_=Integer()) for n in names]))
                prepared = _people_sql[dialect.name, size] = _prepared(
                    statement.compile(dialect=dialect), names)
            sql, bind = prepared
            cursor.execute(sql, bind([*part, *(part[-1],) * (size - len(part))]))
            for sid, email, name, status in cursor.fetchall():
                found[sid] = (email, name, status)
    finally:
        cursor.close()
    return found


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
    edition (its error budget). On SQLite the batch's accepted messages,
    written down one by one as they were accepted (:class:`AckWriter`), move
    into their outbox rows in the same transaction.
    """
    if not results and not store.is_sqlite:
        return 0
    settled = [_with_detail(r) for r in results]
    with store.write() as conn:
        if store.is_sqlite:
            settle_sent(conn, token=token)
        if not settled:
            return 0
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


def _settle_sent_statements(by_token: bool) -> tuple[Any, Any]:
    """:func:`settle_sent`'s UPDATE and DELETE, for one lease's token
    (``:token``) or for every lease expired before ``:before``."""
    journal = outbox_sent
    owned = [outbox.c.status == jobs.SENDING,
             outbox.c.lease_owner == select(journal.c.token)
             .where(journal.c.row_id == outbox.c.id).scalar_subquery()]
    if by_token:
        rows = select(journal.c.row_id).where(journal.c.token == bindparam("token"))
    else:
        rows = select(journal.c.row_id)
        owned.append(outbox.c.lease_until < bindparam("before", type_=UTCDateTime()))
    move = (update(outbox).where(outbox.c.id.in_(rows), *owned)
            .values(status=JobStatus.SENT.value, lease_owner=None, lease_until=None, detail=None,
                    finished_at=select(journal.c.sent_at).where(journal.c.row_id == outbox.c.id)
                    .scalar_subquery()))
    if by_token:
        drop = delete(journal).where(journal.c.token == bindparam("token"))
    else:
        # Whatever no longer names a row leased under its token (moved just
        # now, or left behind by a lease that was lost) goes.
        drop = delete(journal).where(~select(outbox.c.id).where(
            outbox.c.id == journal.c.row_id, outbox.c.status == jobs.SENDING,
            outbox.c.lease_owner == journal.c.token).exists())
    return move, drop


_SETTLE_SENT = {True: _settle_sent_statements(True), False: _settle_sent_statements(False)}
"""Built once: building them cost more than running them (once per batch)."""


def settle_sent(conn: Connection, *, token: str | None = None,
                expired_before: datetime | None = None) -> int:
    """Move accepted messages written down in ``outbox_sent`` into their outbox
    rows (sent, at the moment they were accepted): those of one lease
    ``token``, or of every lease that expired before ``expired_before`` (a
    worker that died before settling its batch). Each row is fenced on the
    token it was accepted under. Returns how many rows became sent."""
    move, drop = _SETTLE_SENT[token is not None]
    values = {"token": token} if token is not None else {"before": expired_before}
    moved = conn.execute(move, values).rowcount
    conn.execute(drop, values)
    return int(moved)


def renew(store: Store, token: str, now: datetime, policy: RetryPolicy) -> int:
    """Extend a lease; 0 rows means it was lost and the worker must stop."""
    with store.write() as conn:
        return jobs.renew(conn, EMAIL, token, now + timedelta(seconds=policy.lease_seconds))


def reap(store: Store, now: datetime, policy: RetryPolicy) -> int:
    """Take back rows whose lease expired (a crashed or stuck worker): those
    it had written down as accepted become sent, the others go back to the
    queue. Returns how many rows were taken back either way."""
    with store.write() as conn:
        recovered = settle_sent(conn, expired_before=now) if store.is_sqlite else 0
        return recovered + jobs.reap(conn, EMAIL, now, policy)


def due_count(store: Store, now: datetime) -> int:
    """Rows a worker could claim at ``now`` (for progress bars and dry runs)."""
    with store.read() as conn:
        return jobs.due_count(conn, EMAIL, now)


def next_due(store: Store) -> datetime | None:
    """When the next waiting row of a sending edition becomes due."""
    with store.read() as conn:
        return jobs.next_due(conn, EMAIL)


ACK_GROUP = 64
"""Most rows one acknowledgement statement names (a bigger group is split)."""


def _ack_statement(size: int, journal: bool) -> Any:
    """Record ``size`` accepted rows in one statement, each fenced on its own token.

    ``id IN (…)`` finds the rows by primary key; the CASE gives each row the
    token it must still carry (rows of one group come from different lanes,
    so from different leases). RETURNING names the rows that were still ours.
    With ``journal`` (SQLite) the rows are written down in ``outbox_sent``
    and their outbox rows are left as they are until the batch is settled
    (:func:`settle_sent`); otherwise (PostgreSQL, where the commit's cost is
    its flush, not its pages, and the UPDATE's row locks keep a concurrent
    reaper out) the outbox rows are marked sent at once. Written down again
    under the same token, a row is still ours (the journal write may be
    retried after it committed); under another token it is not.
    """
    ids = [bindparam(f"r{i}", type_=Integer()) for i in range(size)]
    fence = case(*((outbox.c.id == ids[i], bindparam(f"t{i}", type_=String()))
                   for i in range(size)))
    ours = (outbox.c.id.in_(ids), outbox.c.status == jobs.SENDING, outbox.c.lease_owner == fence)
    when = bindparam("now", type_=UTCDateTime())
    if journal:
        write = sqlite_insert(outbox_sent).from_select(
            ["row_id", "token", "sent_at"],
            select(outbox.c.id, outbox.c.lease_owner, when).where(*ours))
        return (write.on_conflict_do_update(
            index_elements=[outbox_sent.c.row_id], set_={"token": write.excluded.token},
            where=outbox_sent.c.token == write.excluded.token)
            .returning(outbox_sent.c.row_id))
    return (update(outbox).where(*ours)
            .values(status=literal_column(f"'{JobStatus.SENT}'"), lease_owner=null(),
                    lease_until=null(), finished_at=when, detail=null())
            .returning(outbox.c.id))


def _bind_datetime(dialect: Any) -> Callable[[datetime], Any]:
    """What a UTCDateTime value is handed to this backend's DBAPI as.

    On SQLite that is text in SQLAlchemy's storage format (the exact text
    matters: the column is compared as text), made here by one isoformat
    call instead of the type's chain of processors; a test holds the two
    equal. Elsewhere the column type's own conversion."""
    if dialect.name == "sqlite":
        def text(value: datetime) -> str:
            if value.tzinfo is None:
                raise ValueError("naive datetime given to the store; pass an aware one")
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        return text
    process = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    return process or (lambda value: value)


def _check_statement(people: int, issues: int) -> Any:
    """The status of ``people`` subscribers and the state of ``issues`` editions,
    in one statement (one row per pair: a group rarely spans two editions)."""
    return (select(subscribers.c.id, subscribers.c.status, editions.c.edition_id,
                   editions.c.state)
            .where(subscribers.c.id.in_([bindparam(f"s{i}", type_=Integer())
                                         for i in range(people)]),
                   editions.c.edition_id.in_([bindparam(f"e{i}", type_=String())
                                              for i in range(issues)])))


def _verdict(status: str | None, state: str | None) -> Verdict:
    """A reader's subscriber status and the edition's state (None: no such row)."""
    if state is None or status != "active":
        return "suppressed"
    return "cancelled" if state == "cancelled" else "send"


def _ack_and_check_statement() -> Any:
    """SQLite, one lane alone in its group (the usual case): its ack and the
    check of its next reader in one statement, the check read by RETURNING
    (a row comes back only when the ack was still ours)."""
    status = select(subscribers.c.status).where(
        subscribers.c.id == bindparam("s0", type_=Integer())).scalar_subquery()
    state = select(editions.c.state).where(
        editions.c.edition_id == bindparam("e0", type_=String())).scalar_subquery()
    return _ack_statement(1, True).returning(status, state)


class AckWriter:
    """Marks accepted messages sent and makes the per-send checks, a whole
    group of them at once, on one DBAPI connection of its own.

    The fast path of :func:`record` for the one outcome that must be durable
    before a connection sends its next message (a message the server took
    and we forgot would be sent again after a crash), and of the check made
    just before each send. Both run for every message, where a SQLAlchemy
    transaction around them would cost several times the statements, so a
    group (every lane that had a row ready) costs one UPDATE … RETURNING
    for its acks, each row fenced on its own lease token, and one SELECT
    for its checks, which runs after the acks and so sees everything
    committed before them. On PostgreSQL the two are one transaction; on
    SQLite each is a transaction of its own (autocommit): one statement
    writes the journal atomically, the check reads the latest commit
    either way, and two statements fewer (BEGIN, COMMIT) each drop and
    retake the GIL, which among busy lanes is a thread switch. A journal
    write retried after it committed finds its rows ours again.
    Statements are compiled once per group shape, and their values handed
    to the DBAPI as a flat sequence (a few microseconds a commit, which
    every message pays).
    """

    def __init__(self, store: Store) -> None:
        self._sqlite = store.is_sqlite
        self._raw = store.engine.raw_connection()
        self._dialect = store.engine.dialect
        self._acks: dict[int, Prepared] = {}
        self._checks: dict[tuple[int, int], Prepared] = {}
        self._when = _bind_datetime(self._dialect)
        self._one_sql: Prepared | None = None
        self._cursor = self._raw.cursor()

    def commit(self, acks: Sequence[tuple[str, int]], checks: Sequence[tuple[int, str]],
               now: datetime) -> tuple[list[bool], list[Verdict]]:
        """Commit ``(token, row id)`` pairs as sent and check ``(subscriber id,
        edition id)`` pairs: for each ack whether its row was still ours, for
        each check its verdict."""
        if not acks:
            verdicts = self._verdicts(checks)
            if not self._sqlite:
                self._raw.commit()  # end the read transaction: the next check sees new commits
            return [], verdicts
        if self._sqlite:
            # The pool's SQLite connections run in autocommit: each statement
            # commits on its own.
            if len(acks) == 1 and len(checks) == 1:
                return self._one(acks[0], checks[0], now)
            return self._record(acks, now), self._verdicts(checks)
        try:
            kept = self._record(acks, now)
            verdicts = self._verdicts(checks)
            self._raw.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                self._raw.rollback()
            raise
        return kept, verdicts

    def _one(self, ack: tuple[str, int], check: tuple[int, str], now: datetime
             ) -> tuple[list[bool], list[Verdict]]:
        """SQLite, one ack and one check: one statement, not two. Each
        statement (each sqlite3 step) drops and retakes the GIL, which
        among busy lanes is a thread switch or two."""
        if self._one_sql is None:
            self._one_sql = _prepared(_ack_and_check_statement().compile(dialect=self._dialect),
                                      ("now", "r0", "t0", "s0", "e0"))
        sql, bind = self._one_sql
        cursor = self._cursor
        cursor.execute(sql, bind((self._when(now), ack[1], ack[0], *check)))
        found = cursor.fetchall()
        if not found:  # not ours any more: the check is still owed
            return [False], self._verdicts([check])
        ((_row, status, state),) = found
        return [True], [_verdict(status, state)]

    def _record(self, acks: Sequence[tuple[str, int]], now: datetime) -> list[bool]:
        """Mark ``acks`` sent (SQLite: write them down in the journal), one
        statement per :data:`ACK_GROUP` rows; which were still ours."""
        cursor = self._cursor
        when = self._when(now)
        ours: set[int] = set()
        for start in range(0, len(acks), ACK_GROUP):
            part = acks[start:start + ACK_GROUP]
            values: list[Any] = [when]
            for token, row_id in part:
                values += (row_id, token)
            sql, bind = self._ack(len(part))
            cursor.execute(sql, bind(values))
            ours.update(row for (row,) in cursor.fetchall())
        return [row_id in ours for _token, row_id in acks]

    def _ack(self, size: int) -> Prepared:
        found = self._acks.get(size)
        if found is None:
            names = ["now"]
            for i in range(size):
                names += (f"r{i}", f"t{i}")
            found = self._acks[size] = _prepared(
                _ack_statement(size, self._sqlite).compile(dialect=self._dialect), names)
        return found

    def _verdicts(self, wanted: Sequence[tuple[int, str]]) -> list[Verdict]:
        if not wanted:
            return []
        if len(wanted) == 1:
            people: list[Any] = [wanted[0][0]]
            issues: list[Any] = [wanted[0][1]]
        else:
            people = sorted({sid for sid, _eid in wanted})
            issues = sorted({eid for _sid, eid in wanted})
        key = (len(people), len(issues))
        found = self._checks.get(key)
        if found is None:
            names = [*(f"s{i}" for i in range(key[0])), *(f"e{i}" for i in range(key[1]))]
            found = self._checks[key] = _prepared(
                _check_statement(*key).compile(dialect=self._dialect), names)
        sql, bind = found
        cursor = self._cursor
        cursor.execute(sql, bind(people + issues))
        status: dict[int, str] = {}
        state: dict[str, str] = {}
        for sid, sub_status, eid, edition_state in cursor.fetchall():
            status[sid], state[eid] = sub_status, edition_state
        # No row for a subscriber (gone) or an edition (deleted): the cross
        # product is empty for either; both mean "do not send".
        return [_verdict(status.get(sid), state.get(eid)) for sid, eid in wanted]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._cursor.close()
            self._raw.close()

    def discard(self) -> None:
        """Drop a connection that failed (a restarted server, say)."""
        with contextlib.suppress(Exception):
            self._raw.invalidate()
