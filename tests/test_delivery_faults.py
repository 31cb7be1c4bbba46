"""Delivery against a real SMTP server on 127.0.0.1 (aiosmtpd) with faults:
throttling, hard bounces, an outage, unsubscribe and pause mid-send, the
error budget. Time is simulated: retries "minutes later" never sleep."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.delivery_kit import (
    T0,
    Clock,
    Sink,
    edition,
    free_port,
    seed,
    site_settings,
    smtp_config,
    start_sink,
)

from dispatch.config import Settings
from dispatch.delivery import DeliveryReport, deliver
from dispatch.delivery.settings import DeliverySettings
from dispatch.outbox import (
    EditionStatus,
    RetryPolicy,
    cancel,
    edition_status,
    pause,
    queue_edition,
    resume,
)
from dispatch.store.engine import Store
from dispatch.store.schema import outbox
from dispatch.subscribers import get_subscriber
from dispatch.unsubscribe import unsubscribe


@pytest.fixture
def settings(site_root: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("DISPATCH_SECRET_KEY", "test-secret")
    return site_settings(site_root)


def drain(store: Store, settings: Settings, config: DeliverySettings, clock: Clock,
          *, step_minutes: float = 10, passes: int = 40) -> list[DeliveryReport]:
    """Run burst passes, moving simulated time on, until nothing is pending."""
    reports = []
    for _ in range(passes):
        reports.append(deliver(store, settings, clock(), config=config, clock=clock,
                               rng=random.Random(len(reports))))
        if all(s.pending == 0 for s in _statuses(store)):
            return reports
        clock.advance(minutes=step_minutes)
    raise AssertionError(f"still pending after {passes} passes: {_statuses(store)}")


def _statuses(store: Store) -> list:  # type: ignore[type-arg]
    from dispatch.outbox import edition_statuses

    return edition_statuses(store)


def test_random_451s_are_all_delivered_in_the_end(store: Store, settings: Settings) -> None:
    emails = seed(store, 300)
    queue_edition(store, edition(), ["main"], T0)
    rng = random.Random(451)
    lock = threading.Lock()

    def flaky(address: str) -> str | None:
        with lock:
            return "451 4.3.0 try again later" if rng.random() < 0.10 else None

    sink = Sink(rcpt_reply=flaky)
    ctl = start_sink(sink)
    try:
        reports = drain(store, settings, smtp_config(ctl.port, connections=3), Clock())
    finally:
        ctl.stop()
    assert sink.counts() == {e: 1 for e in emails}
    s = edition_status(store, "e1")
    assert (s.sent, s.failed) == (300, 0) and s.reconciles
    assert sum(r.retried for r in reports) > 10  # the 451s really happened
    assert reports[0].failed == 0


def test_hard_bounces_fail_and_are_skipped_next_edition(store: Store, settings: Settings) -> None:
    emails = seed(store, 60)
    gone = set(emails[::6])  # 1 in 6 dead: well over the 10% error budget
    queue_edition(store, edition(), ["main"], T0)
    sink = Sink(rcpt_reply=lambda a: "550 5.1.1 no such user" if a in gone else None)
    ctl = start_sink(sink)
    config = smtp_config(ctl.port, policy=RetryPolicy(error_budget=0.1, error_budget_min=10))
    try:
        drain(store, settings, config, Clock())
        s = edition_status(store, "e1")
        # Dead addresses are list hygiene, not a broken send: the edition finishes.
        assert s.state == "complete" and s.note is None
        assert (s.sent, s.failed) == (60 - len(gone), len(gone)) and s.reconciles
        for address in gone:
            person = get_subscriber(store, address)
            assert person is not None and person.status == "bounced"
        with store.read() as conn:
            details = set(conn.execute(select(outbox.c.detail)
                                       .where(outbox.c.status == "failed")).scalars())
        assert details == {"hard bounce: 550 5.1.1 no such user"}
        nxt = queue_edition(store, edition("e2"), ["main"], T0)
        assert (nxt.queued, nxt.skipped) == (60 - len(gone), len(gone))
        drain(store, settings, config, Clock())
    finally:
        ctl.stop()
    counts = sink.counts()
    assert set(counts) == set(emails) - gone and set(counts.values()) == {2}


def test_server_down_then_up_a_minute_later(store: Store, settings: Settings) -> None:
    emails = seed(store, 80)
    queue_edition(store, edition(), ["main"], T0)
    port = free_port()
    clock = Clock()
    config = smtp_config(port, connections=2)
    first = deliver(store, settings, clock(), config=config, clock=clock)
    assert first.sent == 0 and first.failed == 0 and first.released > 0
    assert first.stopped is not None and "cannot connect" in first.stopped
    with store.read() as conn:
        rows = conn.execute(select(outbox.c.status, outbox.c.attempts)).all()
    assert {r.status for r in rows} == {"queued"} and {r.attempts for r in rows} == {0}

    sink = Sink()
    ctl = start_sink(sink, port)
    try:
        clock.advance(minutes=1)
        second = deliver(store, settings, clock(), config=config, clock=clock)
    finally:
        ctl.stop()
    assert second.sent == 80 and second.failed == 0
    assert sink.counts() == {e: 1 for e in emails}
    assert edition_status(store, "e1").reconciles


def test_an_unsubscribe_mid_send_stops_mail_to_that_address(store: Store,
                                                            settings: Settings) -> None:
    emails = seed(store, 200)
    queue_edition(store, edition(), ["main"], T0)
    # Unsubscribed while message #50 is being accepted: #57 sits in the batch
    # already leased by the worker, #150 is still queued in the database.
    targets = [emails[57], emails[150]]

    def on_accept(rcpt: str, count: int) -> None:
        if count == 50:
            for address in targets:
                unsubscribe(store, address, T0)

    sink = Sink(on_accept=on_accept)
    ctl = start_sink(sink)
    try:
        # Default settings: the worker looks at each recipient's status again
        # just before sending to them.
        report = deliver(store, settings, T0, config=smtp_config(ctl.port, connections=1),
                         clock=Clock())
    finally:
        ctl.stop()
    counts = sink.counts()
    assert not set(targets) & set(counts)
    assert counts == {e: 1 for e in emails if e not in targets}
    assert report.suppressed == 1  # the leased row; unsubscribe() took the queued one
    s = edition_status(store, "e1")
    assert (s.sent, s.suppressed) == (198, 2) and s.reconciles


@pytest.mark.timeout(60)  # a bound, not an expectation: without the fix a lane waits 100 s
def test_a_stop_while_pacing_hands_the_rest_back_due_at_once(store: Store,
                                                             settings: Settings) -> None:
    """A worker told to stop while its rate makes it wait for the next send
    stops at once and hands its claimed rows back untried: due now (for any
    other worker), attempts given back."""
    emails = seed(store, 6)
    queue_edition(store, edition(), ["main"], T0)
    stop = threading.Event()

    def on_accept(rcpt: str, count: int) -> None:
        if count == 2:
            stop.set()

    sink = Sink(on_accept=on_accept)
    ctl = start_sink(sink)
    # One message per 100 s after a burst of two: the third would wait.
    config = smtp_config(ctl.port, connections=1, batch_size=10, rate=0.01, burst=2)
    clock = Clock()
    try:
        report = deliver(store, settings, T0, config=config, clock=clock, stop=stop)
    finally:
        ctl.stop()
    assert sorted(sink.counts()) == sorted(emails[:2])
    assert report.sent == 2 and report.released == 4
    with store.read() as conn:
        rows = conn.execute(select(outbox.c.status, outbox.c.attempts, outbox.c.available_at)
                            .where(outbox.c.status != "sent")).all()
    assert len(rows) == 4
    assert all(r.status == "queued" and r.attempts == 0 and r.available_at <= clock()
               for r in rows)


def test_pause_mid_send_then_resume_sends_nobody_twice(store: Store,
                                                       settings: Settings) -> None:
    emails = seed(store, 150)
    queue_edition(store, edition(), ["main"], T0)

    def on_accept(rcpt: str, count: int) -> None:
        if count == 30:
            pause(store, "e1", T0)

    sink = Sink(on_accept=on_accept)
    ctl = start_sink(sink)
    config = smtp_config(ctl.port, connections=1, batch_size=20)
    try:
        deliver(store, settings, T0, config=config, clock=Clock())
        s = edition_status(store, "e1")
        assert s.state == "paused" and s.sent == 40 and s.pending == 110  # batch 2 finished
        assert resume(store, "e1", T0)
        deliver(store, settings, T0, config=config, clock=Clock())
    finally:
        ctl.stop()
    assert sink.counts() == {e: 1 for e in emails}


def deliver_on_a_budget(store: Store, settings: Settings, sink: Sink) -> EditionStatus:
    """One connection, batches of 10, a 10% error budget from 20 finished rows."""
    ctl = start_sink(sink)
    config = smtp_config(ctl.port, connections=1, batch_size=10,
                         policy=RetryPolicy(error_budget=0.1, error_budget_min=20))
    try:
        deliver(store, settings, T0, config=config, clock=Clock())
    finally:
        ctl.stop()
    return edition_status(store, "e1")


def test_error_budget_pauses_instead_of_burning_the_list(store: Store,
                                                         settings: Settings) -> None:
    emails = seed(store, 200)
    bad = set(emails[::3])
    queue_edition(store, edition(), ["main"], T0)
    s = deliver_on_a_budget(store, settings, Sink(
        data_reply=lambda rcpts: "554 5.7.1 rejected" if rcpts[0] in bad else None))
    assert s.state == "paused" and s.note is not None and "error budget" in s.note
    assert s.sent + s.failed <= 30 and s.pending >= 170
    # 554 after DATA is about the message, not the mailbox: nobody is bounced.
    assert all(get_subscriber(store, e).status == "active" for e in bad)  # type: ignore[union-attr]


def test_a_relay_refusing_everyone_pauses_and_bounces_nobody(store: Store,
                                                             settings: Settings) -> None:
    """A misconfigured relay or a blocked sender refuses every recipient with
    a policy code: the error budget stops the edition early, and no reader is
    marked bounced (that would be impossible to tell from real bounces)."""
    emails = seed(store, 200)
    queue_edition(store, edition(), ["main"], T0)
    s = deliver_on_a_budget(store, settings,
                            Sink(rcpt_reply=lambda address: "550 5.7.1 Unable to relay"))
    assert s.state == "paused" and s.note is not None and "error budget" in s.note
    assert s.failed <= 30 and s.sent == 0 and s.pending >= 170 and s.reconciles
    assert all(get_subscriber(store, e).status == "active" for e in emails)  # type: ignore[union-attr]


def test_resume_gets_a_fresh_error_budget_window(store: Store, settings: Settings) -> None:
    """A burst of failures pauses the edition; after the operator resumes, a
    low failure rate must not pause it again because of the old failures."""
    emails = seed(store, 200)
    early = set(emails[:20])         # rejected at first: exactly the first two batches
    later = set(emails[60::40])      # then 1 in 40: under the 10% budget
    queue_edition(store, edition(), ["main"], T0)
    sink = Sink(data_reply=lambda rcpts: "554 5.6.0 content rejected"
                if rcpts[0] in early | later else None)
    ctl = start_sink(sink)
    config = smtp_config(ctl.port, connections=1, batch_size=10,
                         policy=RetryPolicy(error_budget=0.1, error_budget_min=20))
    clock = Clock()
    try:
        deliver(store, settings, clock(), config=config, clock=clock)
        assert edition_status(store, "e1").state == "paused"
        assert resume(store, "e1", clock.advance(minutes=5))
        deliver(store, settings, clock(), config=config, clock=clock)
    finally:
        ctl.stop()
    s = edition_status(store, "e1")
    assert s.state == "complete", s.note
    assert (s.failed, s.sent) == (len(early | later), 200 - len(early | later))


def test_cancel_mid_send_stops_rows_already_claimed(store: Store, settings: Settings) -> None:
    emails = seed(store, 150)
    queue_edition(store, edition(), ["main"], T0)

    def on_accept(rcpt: str, count: int) -> None:
        if count == 30:  # halfway through the second batch of 20
            cancel(store, "e1", T0)

    sink = Sink(on_accept=on_accept)
    ctl = start_sink(sink)
    try:
        report = deliver(store, settings, T0, config=smtp_config(ctl.port, connections=1,
                                                                 batch_size=20), clock=Clock())
    finally:
        ctl.stop()
    assert sum(sink.counts().values()) == 30 and set(sink.counts()) == set(emails[:30])
    s = edition_status(store, "e1")
    assert (s.state, s.sent, s.cancelled, s.pending) == ("cancelled", 30, 120, 0)
    assert s.reconciles and report.cancelled == 10  # the rest of the leased batch
