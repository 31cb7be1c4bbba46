"""The outbox on a real SQLite file and the real PostgreSQL: frozen audiences,
idempotent queueing, leases, fenced acks, retries, controls, reconciliation."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import sqlite
from tests.delivery_kit import T0, edition, seed

from dispatch.errors import InputError
from dispatch.outbox import (
    RetryPolicy,
    RowResult,
    audience_size,
    cancel,
    claim,
    edition_json,
    edition_status,
    failure_reasons,
    pause,
    queue_edition,
    reap,
    record,
    resume,
    retry_failed,
)
from dispatch.outbox.lease import AckWriter, _bind_datetime
from dispatch.store.engine import Store
from dispatch.store.schema import UTCDateTime, outbox
from dispatch.subscribers import add_subscriber, change_status, get_subscriber
from dispatch.unsubscribe import unsubscribe

POLICY = RetryPolicy(max_attempts=3, base_seconds=60, max_seconds=600, lease_seconds=300,
                     error_budget=0.2, error_budget_min=10)


def statuses(store: Store) -> dict[int, str]:
    with store.read() as conn:
        return {sid: status for sid, status in
                conn.execute(select(outbox.c.subscriber_id, outbox.c.status))}


def assert_reconciles(store: Store, eid: str = "e1") -> None:
    s = edition_status(store, eid)
    assert s.reconciles, s


def test_queue_freezes_a_distinct_audience(store: Store) -> None:
    seed(store, 5, "a", prefix="a")
    both = seed(store, 3, "b", prefix="a")  # the same first 3 people, on a second list
    seed(store, 2, "b", prefix="b")
    gone = get_subscriber(store, "b00001@example.com")
    assert gone is not None
    change_status(store, [gone.id], "unsubscribed", T0)
    assert audience_size(store, ["a", "b"]) == 6
    queued = queue_edition(store, edition(), ["b", "a"], T0)
    assert (queued.created, queued.queued, queued.skipped) == (True, 6, 1)
    assert queued.audience == ("a", "b")
    assert len(both) == 3
    # Joining after the edition was queued does not add a row: the audience is frozen.
    add_subscriber(store, "late@example.com", "a", T0)
    assert edition_status(store, "e1").total == 6 and len(statuses(store)) == 6
    assert_reconciles(store)


def test_queue_is_idempotent_even_when_racing(store: Store) -> None:
    seed(store, 50)
    results = []

    def go() -> None:
        results.append(queue_edition(store, edition(), ["main"], T0))

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.created for r in results) == [False, False, False, True]
    assert all(r.queued == 50 for r in results)
    assert len(statuses(store)) == 50


def test_the_rendered_body_is_stored_once(store: Store) -> None:
    seed(store, 3)
    e = edition()
    queue_edition(store, e, ["main"], T0)
    assert edition_json(store, "e1") == e.to_json()
    assert {c.name for c in outbox.columns}.isdisjoint({"body", "html", "text", "payload"})


def test_unknown_or_empty_audience_is_refused(store: Store) -> None:
    seed(store, 1)
    with pytest.raises(InputError, match="no subscriber list named nope"):
        queue_edition(store, edition(), ["main", "nope"], T0)
    with pytest.raises(InputError):
        queue_edition(store, edition(), [], T0)
    assert audience_size(store, ["nope"]) == 0
    assert edition_json(store, "e1") is None


def test_claims_never_overlap_and_acks_are_fenced(store: Store) -> None:
    seed(store, 10)
    queue_edition(store, edition(), ["main"], T0)
    first = claim(store, "w1", T0, 4, POLICY)
    second = claim(store, "w2", T0, 4, POLICY)
    assert {r.id for r in first.rows}.isdisjoint({r.id for r in second.rows})
    assert len(first.rows) == len(second.rows) == 4
    # w1 stalls past its lease; the reaper hands its rows to w3.
    later = T0 + timedelta(seconds=POLICY.lease_seconds + 1)
    assert reap(store, later, POLICY) == 8
    third = claim(store, "w3", later, 10, POLICY)
    assert {r.id for r in first.rows} <= {r.id for r in third.rows}
    stale = [RowResult(r.id, r.subscriber_id, "sent") for r in first.rows]
    assert record(store, first.token, stale, later, POLICY, random.Random(0)) == 0
    assert set(statuses(store).values()) == {"sending"}
    fresh = [RowResult(r.id, r.subscriber_id, "sent") for r in third.rows]
    assert record(store, third.token, fresh, later, POLICY, random.Random(0)) == 10
    assert set(statuses(store).values()) == {"sent"}
    assert_reconciles(store)


def test_racing_claimers_share_without_duplicates(store: Store) -> None:
    seed(store, 400)
    queue_edition(store, edition(), ["main"], T0)
    seen: list[int] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while True:
            c = claim(store, name, T0, 17, POLICY)
            if not c.rows:
                return
            with lock:
                seen.extend(r.id for r in c.rows)
            record(store, c.token, [RowResult(r.id, r.subscriber_id, "sent") for r in c.rows],
                   T0, POLICY, random.Random(0))

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 400 and len(set(seen)) == 400
    assert edition_status(store, "e1").sent == 400


def test_temporary_failures_back_off_then_give_up(store: Store) -> None:
    seed(store, 1)
    queue_edition(store, edition(), ["main"], T0)
    now = T0
    for attempt in range(1, POLICY.max_attempts + 1):
        c = claim(store, "w", now, 10, POLICY)
        assert [r.attempts for r in c.rows] == [attempt]
        row = c.rows[0]
        record(store, c.token, [RowResult(row.id, row.subscriber_id, "retry", "451 later",
                                          row.attempts)], now, POLICY, random.Random(attempt))
        if attempt < POLICY.max_attempts:
            # Not due before half the capped backoff, due by the full one.
            cap = min(POLICY.max_seconds, POLICY.base_seconds * 2 ** (attempt - 1))
            assert not claim(store, "w", now + timedelta(seconds=cap / 2 - 1), 1, POLICY).rows
            now += timedelta(seconds=cap + 1)
    s = edition_status(store, "e1")
    assert (s.failed, s.pending) == (1, 0)
    with store.read() as conn:
        detail = conn.execute(select(outbox.c.detail)).scalar()
    assert detail is not None and "gave up after 3 attempts: 451 later" in detail


def test_release_gives_the_attempt_back(store: Store) -> None:
    seed(store, 1)
    queue_edition(store, edition(), ["main"], T0)
    for _ in range(POLICY.max_attempts + 2):  # more outages than attempts: never failed
        c = claim(store, "w", T0 + timedelta(days=1), 1, POLICY)
        row = c.rows[0]
        record(store, c.token, [RowResult(row.id, row.subscriber_id, "release", "down",
                                          row.attempts)], T0, POLICY, random.Random(0))
    c = claim(store, "w", T0 + timedelta(days=1), 1, POLICY)
    assert c.rows[0].attempts == 1


def test_backoff_has_bounded_jitter() -> None:
    rng = random.Random(7)
    for attempts in range(1, 12):
        cap = min(POLICY.max_seconds, POLICY.base_seconds * 2 ** (attempts - 1))
        delays = {POLICY.backoff(attempts, rng).total_seconds() for _ in range(20)}
        assert all(cap / 2 <= d <= cap for d in delays) and len(delays) > 1


def test_hard_bounce_suppresses_the_subscriber_for_the_next_edition(store: Store) -> None:
    seed(store, 3)
    queue_edition(store, edition(), ["main"], T0)
    c = claim(store, "w", T0, 10, POLICY)
    results = [RowResult(r.id, r.subscriber_id, "bounced" if i == 0 else "sent", "550 no user")
               for i, r in enumerate(c.rows)]
    record(store, c.token, results, T0, POLICY, random.Random(0))
    assert get_subscriber(store, c.rows[0].email).status == "bounced"  # type: ignore[union-attr]
    nxt = queue_edition(store, edition("e2"), ["main"], T0)
    assert (nxt.queued, nxt.skipped) == (2, 1)


def test_error_budget_pauses_the_edition(store: Store) -> None:
    seed(store, 40)
    queue_edition(store, edition(), ["main"], T0)
    c = claim(store, "w", T0, 12, POLICY)
    results = [RowResult(r.id, r.subscriber_id, "failed" if i % 3 == 0 else "sent", "554 no")
               for i, r in enumerate(c.rows)]
    record(store, c.token, results, T0, POLICY, random.Random(0))
    s = edition_status(store, "e1")
    assert s.state == "paused" and s.note is not None and "error budget" in s.note
    assert not claim(store, "w", T0, 10, POLICY).rows
    assert resume(store, "e1", T0)
    assert len(claim(store, "w", T0, 100, POLICY).rows) == 28


def test_pause_resume_cancel_retry_keep_counts_reconciled(store: Store) -> None:
    seed(store, 20)
    queue_edition(store, edition(), ["main"], T0)
    c = claim(store, "w", T0, 5, POLICY)
    assert pause(store, "e1", T0) and not pause(store, "e1", T0)
    # A batch leased before the pause still finishes and is recorded.
    record(store, c.token, [RowResult(r.id, r.subscriber_id, "sent") for r in c.rows], T0,
           POLICY, random.Random(0))
    assert not claim(store, "w", T0, 5, POLICY).rows
    assert_reconciles(store)
    resume(store, "e1", T0)
    c = claim(store, "w", T0, 5, POLICY)
    assert {r.attempts for r in c.rows} == {1}  # nobody already sent is claimed again
    record(store, c.token, [RowResult(r.id, r.subscriber_id, "failed", "554") for r in c.rows],
           T0, POLICY, random.Random(0))
    assert cancel(store, "e1", T0) == 10
    s = edition_status(store, "e1")
    assert (s.state, s.sent, s.failed, s.cancelled, s.pending) == ("cancelled", 5, 5, 10, 0)
    assert_reconciles(store)
    # Re-queued rows of a cancelled edition would wait for ever: refused.
    with pytest.raises(InputError, match="cancelled"):
        retry_failed(store, "e1", T0)
    s = edition_status(store, "e1")
    assert (s.failed, s.queued, s.state) == (5, 0, "cancelled")
    with pytest.raises(InputError):
        pause(store, "nope", T0)


def test_retry_keeps_a_paused_edition_paused(store: Store) -> None:
    seed(store, 10)
    queue_edition(store, edition(), ["main"], T0)
    c = claim(store, "w", T0, 4, POLICY)
    record(store, c.token, [RowResult(r.id, r.subscriber_id, "failed", "554") for r in c.rows],
           T0, POLICY, random.Random(0))
    assert pause(store, "e1", T0)
    assert retry_failed(store, "e1", T0) == 4
    s = edition_status(store, "e1")
    assert (s.state, s.failed, s.queued) == ("paused", 0, 10)
    assert not claim(store, "w", T0, 10, POLICY).rows  # still waiting for `resume`
    assert resume(store, "e1", T0)
    assert len(claim(store, "w", T0, 10, POLICY).rows) == 10


def test_hard_bounces_do_not_spend_the_error_budget(store: Store) -> None:
    seed(store, 40)
    queue_edition(store, edition(), ["main"], T0)
    c = claim(store, "w", T0, 12, POLICY)
    # Half the batch bounces (an old list), far over the 20% budget.
    results = [RowResult(r.id, r.subscriber_id, "bounced" if i % 2 else "sent",
                         "550 5.1.1 no such user") for i, r in enumerate(c.rows)]
    record(store, c.token, results, T0, POLICY, random.Random(0))
    s = edition_status(store, "e1")
    assert s.state == "sending" and s.note is None
    reasons = failure_reasons(store, "e1")
    assert reasons == [("hard bounce: 550 5.1.1 no such user", 6)]


def test_the_error_budget_counts_from_the_last_resume(store: Store) -> None:
    seed(store, 40)
    queue_edition(store, edition(), ["main"], T0)
    c = claim(store, "w", T0, 12, POLICY)
    record(store, c.token, [RowResult(r.id, r.subscriber_id, "failed" if i < 4 else "sent",
                                      "554 5.6.0 content") for i, r in enumerate(c.rows)],
           T0, POLICY, random.Random(0))
    assert edition_status(store, "e1").state == "paused"  # 4 of 12 > 20%
    later = T0 + timedelta(minutes=10)
    assert resume(store, "e1", later)
    c = claim(store, "w", later, 10, POLICY)
    # 1 of 10 since the resume is within budget; 5 of 22 in all would not be.
    record(store, c.token, [RowResult(r.id, r.subscriber_id, "failed" if i == 0 else "sent",
                                      "554 5.6.0 content") for i, r in enumerate(c.rows)],
           later, POLICY, random.Random(0))
    assert edition_status(store, "e1").state == "sending"
    assert failure_reasons(store, "e1", limit=1) == [("554 5.6.0 content", 5)]


def test_unsubscribe_suppresses_queued_rows(store: Store) -> None:
    emails = seed(store, 5)
    queue_edition(store, edition(), ["main"], T0)
    assert unsubscribe(store, emails[2], T0) is True
    assert unsubscribe(store, emails[2], T0) is False  # idempotent
    c = claim(store, "w", T0, 10, POLICY)
    assert emails[2] not in {r.email for r in c.rows} and len(c.rows) == 4
    s = edition_status(store, "e1")
    assert (s.suppressed, s.sending) == (1, 4)
    assert_reconciles(store)


@pytest.mark.parametrize("at", [datetime(2026, 12, 3, 19, 4, 5, 120, tzinfo=UTC),
                                datetime(2026, 12, 3, 19, 4, 5, tzinfo=timezone(
                                    timedelta(hours=-5))),
                                datetime(999, 1, 2, 3, 4, 5, 999_999, tzinfo=UTC)])
def test_the_ack_writers_times_are_the_column_types_own_text_on_sqlite(at: datetime) -> None:
    dialect = sqlite.dialect()
    own = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert own is not None and _bind_datetime(dialect)(at) == own(at)


def test_the_ack_writer_records_the_moment_and_checks_each_reader(store: Store) -> None:
    seed(store, 3)
    queue_edition(store, edition(), ["main"], T0)
    leased = claim(store, "w1", T0, 3, POLICY)
    gone = leased.rows[1]
    change_status(store, [gone.subscriber_id], "unsubscribed", T0)
    at = datetime(2026, 12, 3, 19, 4, 5, 120, tzinfo=timezone(timedelta(hours=-5)))
    writer = AckWriter(store)
    try:
        kept, verdicts = writer.commit(
            [(leased.token, leased.rows[0].id), ("someone-else/0", leased.rows[2].id)],
            [(r.subscriber_id, r.edition_id) for r in leased.rows], at)
        # SQLite writes the journal in a statement of its own: written again
        # (a retry after it committed), the row is still ours.
        again = writer.commit([(leased.token, leased.rows[0].id)], [], at) \
            if store.is_sqlite else ([True], [])
        # One ack and one check (SQLite: one statement), ours or not.
        lone = writer.commit([(leased.token, leased.rows[2].id)],
                             [(gone.subscriber_id, gone.edition_id)], at)
        stale = writer.commit([("someone-else/0", leased.rows[1].id)],
                              [(leased.rows[0].subscriber_id, "no-such-edition")], at)
        cancel(store, "e1", at)
        cancelled = writer.commit([(leased.token, leased.rows[1].id)],
                                  [(leased.rows[0].subscriber_id, "e1")], at)
    finally:
        writer.close()
    assert kept == [True, False] and verdicts == ["send", "suppressed", "send"]
    assert again == ([True], [])
    assert (lone, stale) == (([True], ["suppressed"]), ([False], ["suppressed"]))
    assert cancelled[1] == ["cancelled"]
    record(store, leased.token, [], at, POLICY, random.Random(0))  # SQLite: into the rows
    with store.read() as conn:
        sent = conn.execute(select(outbox.c.id, outbox.c.finished_at)
                            .where(outbox.c.status == "sent")).all()
    assert sorted(sent) == [(r.id, at) for r in leased.rows]
