"""Email delivery: the outbox as a channel of the job engine's one loop.

``deliver`` runs :func:`dispatch.jobs.worker.work` with N sender lanes,
each with one reused transport connection, :data:`LANES_PER_THREAD` of them
driven in turn by one thread. A lane claims a batch
under a lease in one short transaction, re-checks just before each send
that the recipient is still active and the edition not cancelled, builds
every message late from the stored edition, sends, then records the batch's
outcomes in one fenced transaction, except each accepted message, which is
committed as sent before its lane sends the next one (grouped with the
other lanes' in one commit: see :mod:`dispatch.delivery.acks`), so a crash
re-sends at most one message per connection. No transaction is open while
a server is being talked to. A server that cannot be reached hands the rest of the
batch back and backs the whole worker off. What is email's own is
:class:`EmailChannel`: the hourly/daily caps, the re-check, the message,
what a bounce means.

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
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime, timedelta

from dispatch.config import Settings
from dispatch.delivery.acks import AckCommitter, AckSlot
from dispatch.delivery.limits import allowance
from dispatch.delivery.personalise import MessageSource
from dispatch.delivery.registry import email_transport
from dispatch.delivery.report import DeliveryReport
from dispatch.delivery.settings import DeliverySettings, load_delivery_settings
from dispatch.delivery.transport import Envelope, SendResult, Transport
from dispatch.jobs.states import Outcome
from dispatch.jobs.worker import Batch, Options, Progress, work
from dispatch.outbox.lease import (
    ClaimedRow,
    RowResult,
    claim,
    due_count,
    next_due,
    reap,
    record,
    renew,
)
from dispatch.store.engine import Store
from dispatch.unsubscribe import secret_key

log = logging.getLogger(__name__)

LANES_PER_THREAD = 1
"""Connections one sender thread drives in turn. More than one pays only
against a server offering PIPELINING and CHUNKING: with any other the
content waits for envelope replies that the client reads blocking, so a
thread's lanes would wait for each other's round trips (at 10 ms a reply,
4 connections in one thread: 39 msg/s against 90 with a thread each)."""


def make_transport(settings: Settings, config: DeliverySettings) -> Transport:
    """The configured transport, looked up in the registry; one that sends
    nothing (a dry run) or lacks its server falls back to local capture."""
    declared = email_transport(config.transport)
    if declared.build is None or (declared.needs_server and config.smtp is None):
        declared = email_transport("capture")
    assert declared.build is not None
    return declared.build(settings, config)


class _Lane:
    """One lane's acknowledgement slot and its accepted, not yet committed row."""

    __slots__ = ("pending", "slot")

    def __init__(self) -> None:
        self.slot = AckSlot()
        self.pending: tuple[str, int] | None = None


class EmailChannel:
    """Email rows as a channel of the one delivery loop: the caps, the
    per-send re-check, the message built late, each accepted message
    committed before its lane sends the next one (group commit, see
    :mod:`dispatch.delivery.acks`), the other outcomes recorded per batch."""

    settle_each = False

    def __init__(self, store: Store, settings: Settings, config: DeliverySettings,
                 transport: Transport, rng: random.Random) -> None:
        self.store, self.config, self.policy, self.rng = store, config, config.policy, rng
        self.the_transport = transport
        self.source = MessageSource(store, settings, secret_key(settings))
        self.acks: AckCommitter | None = None
        self.last_date: datetime | None = None

    def start(self, clock: Callable[[], datetime],
              writing: Callable[[], AbstractContextManager[None]]) -> None:
        self.acks = AckCommitter(self.store, clock, writing)

    def stop(self) -> None:
        if self.acks is not None:
            self.acks.close()

    def lane(self) -> _Lane:
        return _Lane()

    def claim(self, owner: str, now: datetime, limit: int) -> Batch[ClaimedRow] | None:
        room = allowance(self.store, now, self.config.hourly_cap, self.config.daily_cap)
        if room is not None:
            limit = min(limit, room)
        if not limit:
            return None
        found = claim(self.store, owner, now, limit, self.policy)
        return Batch(found.token, found.lease_until, found.rows, found.suppressed)

    def renew(self, token: str, now: datetime) -> bool:
        return bool(renew(self.store, token, now, self.policy))

    def reap(self, now: datetime) -> int:
        return reap(self.store, now, self.policy)

    def ask(self, lane: object, job: ClaimedRow) -> None:
        # The previous accepted message must be on disk before this one
        # leaves, and the recipient is checked again: one request to the
        # committer does both.
        assert isinstance(lane, _Lane) and self.acks is not None
        self.acks.submit(lane.slot, lane.pending, (job.subscriber_id, job.edition_id))

    def check(self, lane: object, job: ClaimedRow) -> tuple[bool, Outcome | None]:
        assert isinstance(lane, _Lane) and self.acks is not None
        ours = self.acks.wait(lane.slot)
        lane.pending = None
        verdict = lane.slot.verdict
        return ours, None if verdict == "send" else Outcome(verdict)

    def transport(self, job: ClaimedRow) -> Transport:
        return self.the_transport

    def build(self, job: ClaimedRow, now: datetime) -> Envelope:
        return Envelope(self.source.envelope_sender(job), job.email,
                        self.source.build(job, self.send_date(now)))

    def accept(self, lane: object, token: str, job: ClaimedRow, sent: SendResult) -> bool:
        assert isinstance(lane, _Lane)
        lane.pending = (token, job.id)  # committed with the next check, or by flush
        return True

    def flush(self, lane: object) -> bool:
        assert isinstance(lane, _Lane) and self.acks is not None
        if lane.pending is None:
            return True
        self.acks.submit(lane.slot, lane.pending)
        lane.pending = None
        return self.acks.wait(lane.slot)

    def result(self, job: ClaimedRow, outcome: Outcome, detail: str | None,
               sent: SendResult | None) -> RowResult:
        return RowResult(job.id, job.subscriber_id, outcome, detail, job.attempts)

    def record(self, token: str, results: Sequence[RowResult], now: datetime) -> int:
        return record(self.store, token, results, now, self.policy, self.rng)

    def send_date(self, now: datetime) -> datetime:
        """Now, to the second, as one object per second: the Date header has
        whole seconds, and the message factory reuses its formatted header
        while it is handed the same date object (formatting cost ~8% of a
        lane's CPU)."""
        now = now.replace(microsecond=0)
        last = self.last_date
        if last is not None and last == now:
            return last
        self.last_date = now
        return now


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
    channel = EmailChannel(store, settings, config, transport, rng or random.Random())
    tally = work(
        channel, Options(lanes=config.connections, batch_size=config.batch_size,
                         per_thread=LANES_PER_THREAD,
                         rate=config.rate, burst=config.burst),
        config.policy, owner=owner or f"{socket.gethostname()}:{os.getpid()}",
        clock=clock or (lambda: now + timedelta(seconds=time.monotonic() - started)),
        due=lambda at: due_count(store, at), burst=burst, stop=stop, progress=progress,
        serialise_writes=store.is_sqlite)
    report = DeliveryReport(
        transport.name, sent=tally["sent"], retried=tally["retried"],
        failed=tally["failed"] + tally["bounced"], bounced=tally["bounced"],
        suppressed=tally["suppressed"], cancelled=tally["cancelled"],
        released=tally["released"], reaped=tally["reaped"], lost=tally["lost"],
        stopped=tally.stopped)
    return replace(report, next_due=next_due(store))
