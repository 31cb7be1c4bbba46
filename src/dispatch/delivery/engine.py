"""The delivery engine: claim → re-check → personalise → send → record.

``deliver`` runs N sender lanes (threads), each with one reused transport
connection. A lane claims a batch under a lease in one short transaction,
re-checks just before each send that the recipient is still active and the
edition not cancelled, builds every message late from the stored edition,
and sends. A message the server accepted is committed as sent before the
lane sends its next one (grouped with the other lanes' in one commit: see
:mod:`dispatch.delivery.acks`), so a crash re-sends at most one message per
connection; the batch's other outcomes are recorded in one fenced
transaction at its end. No transaction is open while a server is being
talked to. A server that cannot
be reached hands the rest of the batch back and backs the whole worker off.

With ``burst=True`` it returns once nothing is due (rows waiting for a retry
delay stay pending; the report says when the next one is due); otherwise it
polls until ``stop`` is set. Time comes from ``now`` plus elapsed monotonic
time, or from an injected ``clock`` (tests simulate minutes without sleeping).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from dispatch.config import Settings
from dispatch.delivery.acks import AckCommitter, AckSlot
from dispatch.delivery.limits import TokenBucket, allowance
from dispatch.delivery.personalise import MessageSource
from dispatch.delivery.registry import email_transport
from dispatch.delivery.report import DeliveryReport
from dispatch.delivery.settings import DeliverySettings, load_delivery_settings
from dispatch.delivery.transport import Connection, Transport, TransportUnavailable
from dispatch.errors import DispatchError
from dispatch.jobs.states import Outcome, ResultClass
from dispatch.outbox.lease import (
    Claim,
    ClaimedRow,
    RowResult,
    claim,
    due_count,
    next_due,
    reap,
    record,
    renew,
)
from dispatch.outbox.policy import RetryPolicy
from dispatch.store.engine import Store
from dispatch.unsubscribe import secret_key

log = logging.getLogger(__name__)
OUTAGE_START = 5.0
"""The first back-off when the server is unreachable; it doubles up to 300 s."""
LEASE_CHECK_SECONDS = 0.2
"""How often a lane looks at its lease's expiry while sending a batch."""
_monotonic = time.monotonic  # the lease-check throttle's clock (tests freeze it)

Progress = Callable[[int, int], None]
_TALLY = {"sent": "sent", "retry": "retried", "failed": "failed", "bounced": "bounced",
          "suppressed": "suppressed", "cancelled": "cancelled", "release": "released",
          "handback": "released"}


def make_transport(settings: Settings, config: DeliverySettings) -> Transport:
    """The configured transport, looked up in the registry; one that sends
    nothing (a dry run) or lacks its server falls back to local capture."""
    declared = email_transport(config.transport)
    if declared.build is None or (declared.needs_server and config.smtp is None):
        declared = email_transport("capture")
    assert declared.build is not None
    return declared.build(settings, config)


@dataclass
class _Run:
    store: Store
    settings: Settings
    config: DeliverySettings
    transport: Transport
    source: MessageSource
    clock: Callable[[], datetime]
    burst: bool
    stop: threading.Event
    owner: str
    rng: random.Random
    bucket: TokenBucket
    progress: Progress | None
    total: int
    acks: AckCommitter | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    claim_lock: threading.Lock = field(default_factory=threading.Lock)
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    counts: dict[str, int] = field(default_factory=dict)
    done: int = 0
    down_until: datetime | None = None
    outage: float = 5.0  # OUTAGE_START
    stopped: str | None = None
    claimed: int = 0
    last_date: datetime | None = None

    @property
    def policy(self) -> RetryPolicy:
        return self.config.policy

    @contextmanager
    def writing(self) -> Iterator[None]:
        """On SQLite, one writer at a time inside this process: a lane that
        finds the database locked sleeps in SQLite's busy handler (1, 2, 5,
        10 ms …), far longer than waiting its turn on a Python lock."""
        if not self.store.is_sqlite:
            yield
            return
        with self.write_lock:
            yield

    def batch_limit(self) -> int:
        """The configured batch size, but near the end of a run an equal share
        of what is left, so no lane sits idle while another works through a
        long last batch (which matters when each send waits on a slow server)."""
        if not self.burst:
            # A long-running worker's "total" is only what was due when it
            # started; later editions would all go out in tail-sized batches.
            return self.config.batch_size
        left = self.total - self.claimed
        share = -(-left // max(1, self.config.connections))
        return max(1, min(self.config.batch_size, max(share, 5)))

    def add(self, key: str, n: int = 1) -> None:
        if n:
            with self.lock:
                self.counts[key] = self.counts.get(key, 0) + n

    def tick(self) -> None:
        with self.lock:
            self.done += 1
            done, total = self.done, max(self.total, self.done)
        if self.progress is not None:
            self.progress(done, total)

    def halt(self, reason: str) -> None:
        with self.lock:
            self.stopped = self.stopped or reason
        if self.burst:
            self.stop.set()

    def server_down(self, exc: TransportUnavailable) -> None:
        """Back off the whole worker, not just one row: every lane would fail
        the same way, and hammering a down server only burns attempts."""
        with self.lock:
            self.down_until = self.clock() + timedelta(seconds=self.outage)
            self.outage = min(300.0, self.outage * 2)
        log.warning("transport unavailable: %s", exc)
        self.halt(f"{exc}")

    def server_up(self) -> None:
        """Reachable again: the next outage starts with a short back-off, not
        the long one this outage grew to."""
        with self.lock:
            self.outage = OUTAGE_START

    def wait(self, seconds: float) -> None:
        self.stop.wait(max(0.05, seconds))

    def send_date(self) -> datetime:
        """Now, to the second, as one object per second: the Date header has
        whole seconds, and the message factory reuses its formatted header
        while it is handed the same date object (formatting cost ~8% of a
        lane's CPU)."""
        now = self.clock().replace(microsecond=0)
        last = self.last_date
        if last is not None and last == now:
            return last
        self.last_date = now
        return now


def _release(rows: list[ClaimedRow], reason: str,
             outcome: Outcome = Outcome.RELEASE) -> list[RowResult]:
    """Hand rows back untried; ``record`` gives their attempt back (a
    ``handback`` is due again at once, a ``release`` after a backoff)."""
    return [RowResult(r.id, r.subscriber_id, outcome, reason, r.attempts) for r in rows]


def _send_batch(run: _Run, batch: Claim, conn: Connection | None,
                slot: AckSlot) -> Connection | None:
    results: list[RowResult] = []
    lease_until = batch.lease_until
    half_lease = timedelta(seconds=run.policy.lease_seconds / 2)
    rows = list(batch.rows)
    acks = run.acks
    assert acks is not None
    sent = lost = 0
    pending: tuple[str, int] | None = None  # an accepted row, not yet committed
    renewal_checked = float("-inf")  # look at the lease before the first send, as always
    for index, row in enumerate(rows):
        if run.stop.is_set():
            results.extend(_release(rows[index:], run.stopped or "worker stopping",
                                    Outcome.HANDBACK))
            break
        checked = _monotonic()
        if checked - renewal_checked >= LEASE_CHECK_SECONDS:
            renewal_checked = checked
            now = run.clock()
            if now > lease_until - half_lease:
                with run.writing():
                    kept = renew(run.store, batch.token, now, run.policy)
                if not kept:
                    lost += len(rows) - index
                    log.warning("lease %s lost mid-batch; stopping this batch", batch.token)
                    break
                lease_until = now + timedelta(seconds=run.policy.lease_seconds)
        # Built before the check below, so that the check is the last thing
        # between it and the wire (a message built for a reader who has just
        # left is thrown away).
        try:
            message = run.source.build(row, run.send_date())
        except DispatchError as exc:
            # One recipient whose values cannot make a message (a bad name,
            # say) fails alone; the batch goes on.
            results.append(RowResult(row.id, row.subscriber_id, Outcome.FAILED,
                                     f"cannot build the message: {exc}", row.attempts))
            continue
        # The previous accepted message must be on disk before this one
        # leaves, and suppression is checked again just before each send,
        # for this one recipient: an unsubscribe committed before this point
        # is honoured even though the row was claimed (and the status read)
        # earlier. The same lookup sees a cancel, so a cancelled edition's
        # claimed rows are not sent either (a pause lets them finish, as
        # documented). One request to the committer does both.
        acks.submit(slot, pending, (row.subscriber_id, row.edition_id))
        committed = slot.wait()
        if pending is not None:
            pending = None
            if not committed:
                lost += len(rows) - index + 1
                sent -= 1
                log.warning("lease %s lost mid-batch; stopping this batch", batch.token)
                break
        if slot.verdict != "send":
            results.append(RowResult(row.id, row.subscriber_id, Outcome(slot.verdict)))
            continue
        run.bucket.take()
        if run.stop.is_set():  # stopped while waiting for the pace to allow a send
            results.extend(_release(rows[index:], run.stopped or "worker stopping",
                                    Outcome.HANDBACK))
            break
        try:
            if conn is None:
                conn = run.transport.open()
            result = conn.send(run.source.envelope_sender(row), row.email, message)
        except TransportUnavailable as exc:
            conn = None
            run.server_down(exc)
            # The server is unreachable for every row, not just this one: give
            # the rest of the batch back now (attempts returned) and let the
            # worker-wide backoff decide when to try again, instead of one
            # connection attempt (and one timeout) per remaining row.
            results.extend(_release(rows[index:], str(exc)))
            break
        # The transport classified the reply; the engine knows no SMTP codes.
        if result.klass is ResultClass.DELIVERED:
            pending = (batch.token, row.id)  # committed with the next check, or below
            sent += 1
            if run.outage != OUTAGE_START:
                run.server_up()
        else:
            if result.klass is ResultClass.THROTTLED:
                run.bucket.slow_down()
            results.append(RowResult(row.id, row.subscriber_id, result.outcome, result.text,
                                     row.attempts))
        run.tick()
    if pending is not None:
        acks.submit(slot, pending)
        if not slot.wait():
            sent -= 1
            lost += 1
    with run.writing():
        accepted = record(run.store, batch.token, results, run.clock(), run.policy, run.rng)
    tally = Counter(_TALLY[r.outcome] for r in results)
    tally["lost"] += len(results) - accepted + lost
    tally["sent"] += sent
    with run.lock:
        for key, n in tally.items():
            run.counts[key] = run.counts.get(key, 0) + n
    return conn


def _lane(run: _Run) -> None:
    conn: Connection | None = None
    slot = AckSlot()
    try:
        while not run.stop.is_set():
            now = run.clock()
            if run.down_until is not None and now < run.down_until:
                run.wait((run.down_until - now).total_seconds())
                continue
            with run.claim_lock, run.writing():
                # Caps count rows in flight too, so checking and claiming
                # under one lock keeps this worker's lanes within the cap.
                # (Workers on other machines can overshoot by one batch each.)
                limit = run.batch_limit()
                room = allowance(run.store, now, run.config.hourly_cap, run.config.daily_cap)
                if room is not None:
                    limit = min(limit, room)
                batch = (claim(run.store, run.owner, now, limit, run.policy) if limit
                         else None)
                if batch is not None:
                    run.claimed += len(batch.rows) + batch.suppressed
            if batch is None:
                with run.lock:
                    run.stopped = run.stopped or "the hourly/daily sending cap is reached"
                if run.burst:
                    return
                run.wait(60)
                continue
            run.add("suppressed", batch.suppressed)
            if batch.rows:
                conn = _send_batch(run, batch, conn, slot)
            elif not batch.suppressed:
                if run.burst:
                    return
                with run.writing():
                    run.add("reaped", reap(run.store, run.clock(), run.policy))
                run.wait(5.0)
    except Exception as exc:  # a bug must not leave the other lanes waiting for ever
        log.exception("sender lane failed")
        run.halt(f"internal error: {exc}")
        run.stop.set()
        raise
    finally:
        if conn is not None:
            conn.close()


def deliver(store: Store, settings: Settings, now: datetime, *, burst: bool = True,
            config: DeliverySettings | None = None, transport: Transport | None = None,
            clock: Callable[[], datetime] | None = None, stop: threading.Event | None = None,
            progress: Progress | None = None, dry_run: bool = False,
            rng: random.Random | None = None, owner: str | None = None) -> DeliveryReport:
    """Send every due outbox row with the configured transport; see the module doc."""
    config = config or load_delivery_settings(settings)
    for note in config.warnings:  # e.g. an smtp_url ignored because transport = "capture"
        log.warning("%s", note)
    transport = transport or make_transport(settings, config)
    if dry_run or config.transport == "dry-run":
        return DeliveryReport("dry run", due=due_count(store, now), dry_run=True,
                              next_due=next_due(store))
    started = time.monotonic()
    stopper = stop or threading.Event()
    run = _Run(
        store=store, settings=settings, config=config, transport=transport,
        source=MessageSource(store, settings, secret_key(settings)),
        clock=clock or (lambda: now + timedelta(seconds=time.monotonic() - started)),
        burst=burst, stop=stopper,
        owner=owner or f"{socket.gethostname()}:{os.getpid()}",
        rng=rng or random.Random(),
        # The pace waits on the stop event, so a slow rate never delays a stop.
        bucket=TokenBucket(config.rate, config.burst, sleep=stopper.wait),
        progress=progress, total=0)
    run.add("reaped", reap(store, run.clock(), config.policy))
    run.total = due_count(store, run.clock())
    run.acks = AckCommitter(store, run.clock, run.writing)
    lanes = [threading.Thread(target=_lane, args=(run,), name=f"dispatch-send-{i}", daemon=True)
             for i in range(max(1, config.connections))]
    for lane in lanes:
        lane.start()
    try:
        for lane in lanes:
            while lane.is_alive():
                lane.join(0.2)
    except KeyboardInterrupt:
        run.halt("interrupted")
        run.stop.set()
        for lane in lanes:
            lane.join()
        raise
    finally:
        run.acks.close()
    c = run.counts
    report = DeliveryReport(
        transport.name, sent=c.get("sent", 0), retried=c.get("retried", 0),
        failed=c.get("failed", 0) + c.get("bounced", 0), bounced=c.get("bounced", 0),
        suppressed=c.get("suppressed", 0), cancelled=c.get("cancelled", 0),
        released=c.get("released", 0),
        reaped=c.get("reaped", 0), lost=c.get("lost", 0), stopped=run.stopped)
    return replace(report, next_due=next_due(store))
