"""The one delivery loop: claim under a lease, send through a transport, settle.

Email messages and social posts are both delivered by :func:`work`. What a
kind of job needs of its own is a :class:`Channel` (how to claim a batch,
what to check just before a send, how to build what the transport carries,
how to record a batch); the loop around it is shared::

    lane (thread) ── claim a batch under a lease (one short transaction)
         for each job:  renew the lease past half of it
                        build the message
                        wait for the pace (token bucket)
                        begin it: its envelope goes out (a connection that
                          can, see jobs/transport.py), and meanwhile
                        re-check (a reader unsubscribed? an edition cancelled?),
                          committing the lane's previous delivered job if the
                          channel keeps them (email: at most one message per
                          connection can go out twice after a crash)
                        finish it (its content; the next message is built
                          while its answer is on the way), or abort it (a
                          veto, a lost lease: nothing of it is delivered)
                        the transport's classified result -> an Outcome
         settle the batch's outcomes, fenced on the lease token
         (or each outcome at once, for a channel that says so)

``lanes`` lanes run side by side, each with its own connection per
transport, driven by threads that take ``per_thread`` lanes each in turn
(:func:`_drive`): a lane is a generator that gives its thread back where it
would wait (for its check's commit, for a server's answer), so one thread
keeps several connections busy, and the checks of its lanes are committed
together. No transaction is open while a server is being talked to. A
transport that cannot reach its server (:class:`TransportUnavailable`)
hands the rest of the batch back untried and backs the whole worker off
(5 s, doubling to 300 s). A throttled answer also slows the pace.

With ``burst`` the loop returns once nothing is due; otherwise it polls
until ``stop`` is set. The retry rule is the channel's
:class:`~dispatch.jobs.policy.RetryPolicy`, applied when results are settled
(:func:`dispatch.jobs.lease.settle`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, Protocol, TypeVar

from dispatch.errors import DispatchError
from dispatch.jobs.lease import Settleable
from dispatch.jobs.pace import TokenBucket
from dispatch.jobs.policy import RetryPolicy
from dispatch.jobs.states import Outcome, ResultClass, TransportResult
from dispatch.jobs.transport import Connection, Staged, Transport, TransportUnavailable

log = logging.getLogger(__name__)

OUTAGE_START = 5.0
"""The first back-off when a server is unreachable; it doubles up to 300 s."""
OUTAGE_MAX = 300.0
LEASE_CHECK_SECONDS = 0.2
"""How often a lane looks at its lease's expiry while working through a batch."""
_monotonic = time.monotonic  # the lease-check throttle's clock (tests freeze it)

J = TypeVar("J")
M = TypeVar("M")
R = TypeVar("R", bound=Settleable)
Progress = Callable[[int, int], None]
Steps = Generator[float | None, None, None]
"""A lane as its thread drives it: each step ends where the lane would wait,
with None (for a server's answer or a commit: its turn comes again after
the thread's other lanes had theirs) or the :func:`time.monotonic` time
to sleep until."""

TALLY = {Outcome.SENT: "sent", Outcome.RETRY: "retried", Outcome.FAILED: "failed",
         Outcome.BOUNCED: "bounced", Outcome.SUPPRESSED: "suppressed",
         Outcome.CANCELLED: "cancelled", Outcome.RELEASE: "released",
         Outcome.HANDBACK: "released"}
"""The counter each outcome adds to in :attr:`Tally.counts`."""


@dataclass(frozen=True, slots=True)
class Batch(Generic[J]):
    """Jobs leased to one lane under one token."""

    token: str
    lease_until: datetime
    jobs: Sequence[J]
    skipped: int = 0
    """Jobs the claim settled at once (an email reader no longer active)."""


class Channel(Protocol[J, M, R]):
    """One kind of job's side of the loop; every call is short.

    ``J`` is a claimed job, ``M`` what its transport carries, ``R`` the
    settled result the channel records. A channel may keep per-lane state
    (:meth:`lane`), and may take a delivered job into its own keeping
    (:meth:`accept`: email commits each accepted message before its lane
    sends the next one, so a crash can send again at most one message per
    connection); it then commits it with the next :meth:`check` or at
    :meth:`flush`.
    """

    @property
    def settle_each(self) -> bool:
        """Record every outcome at once (a post that may not be sent twice)
        instead of the whole batch in one transaction (email)."""
        ...

    def start(self, clock: Callable[[], datetime],
              writing: Callable[[], AbstractContextManager[None]]) -> None:
        """Before the lanes start (``writing``: the worker's SQLite write turn)."""
        ...

    def stop(self) -> None:
        """After every lane has ended."""
        ...

    def lane(self) -> object:
        """A new lane's own state, handed back to check, accept and flush."""
        ...

    def claim(self, owner: str, now: datetime, limit: int) -> Batch[J] | None:
        """Lease up to ``limit`` due jobs; None when a sending cap allows none now."""
        ...

    def renew(self, token: str, now: datetime) -> bool: ...

    def reap(self, now: datetime) -> int:
        """Queue again the jobs of workers whose lease expired; how many."""
        ...

    def ask(self, lane: object, job: J) -> None:
        """Hand in the check of ``job`` (and the commit of what the lane
        keeps), answered by :meth:`check`; the lanes a thread drives in turn
        hand theirs in before the first of them waits, so one transaction
        answers them all."""
        ...

    def check(self, lane: object, job: J) -> tuple[bool, Outcome | None]:
        """Just before the send, the answer to :meth:`ask`: whether the job
        this lane accepted last (if any) is now committed as ours, and None
        to send ``job`` or why not (suppressed, cancelled)."""
        ...

    def transport(self, job: J) -> Transport[M]: ...

    def build(self, job: J, now: datetime) -> M:
        """What the transport carries; a DispatchError fails this job alone."""
        ...

    def accept(self, lane: object, token: str, job: J, sent: TransportResult) -> bool:
        """A delivered job: True if the channel keeps it (committed by the next
        check or flush), False to settle it with the others."""
        ...

    def flush(self, lane: object) -> bool:
        """Commit what the lane keeps; False if the lease was lost meanwhile."""
        ...

    def result(self, job: J, outcome: Outcome, detail: str | None,
               sent: TransportResult | None) -> R: ...

    def record(self, token: str, results: Sequence[R], now: datetime) -> int:
        """Settle outcomes fenced on ``token``; how many were still ours."""
        ...


@dataclass(frozen=True, slots=True)
class Options:
    lanes: int = 1
    batch_size: int = 50
    rate: float = 0.0
    """Sends per second across every lane (0: as fast as the transport goes)."""
    burst: float = 0.0
    max_batches: int | None = None
    """Stop after this many claims (None: until nothing is due)."""
    per_thread: int = 1
    """Lanes one thread drives in turn (see :func:`_drive`)."""


@dataclass
class Tally:
    """What a run did: counts by :data:`TALLY` word, and why it stopped early."""

    counts: Counter[str]
    stopped: str | None
    error: Exception | None = None
    """What broke a lane (a bug), for a caller that must not carry on as if
    nothing happened; the other lanes were stopped."""

    def __getitem__(self, key: str) -> int:
        return self.counts.get(key, 0)


@dataclass
class _Run(Generic[J, M, R]):
    channel: Channel[J, M, R]
    options: Options
    policy: RetryPolicy
    clock: Callable[[], datetime]
    burst: bool
    stop: threading.Event
    owner: str
    bucket: TokenBucket
    progress: Progress | None
    total: int
    serialise_writes: bool
    lock: threading.Lock = field(default_factory=threading.Lock)
    claim_lock: threading.Lock = field(default_factory=threading.Lock)
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    counts: Counter[str] = field(default_factory=Counter)
    done: int = 0
    down_until: datetime | None = None
    outage: float = OUTAGE_START
    stopped: str | None = None
    error: Exception | None = None
    claimed: int = 0
    batches: int = 0

    @contextmanager
    def writing(self) -> Iterator[None]:
        """On SQLite, one writer at a time inside this process: a lane that
        finds the database locked sleeps in SQLite's busy handler (1, 2, 5,
        10 ms …), far longer than waiting its turn on a Python lock."""
        if not self.serialise_writes:
            yield
            return
        with self.write_lock:
            yield

    def batch_limit(self) -> int:
        """The configured batch size, but near the end of a burst an equal share
        of what is left, so no lane sits idle while another works through a
        long last batch (which matters when each send waits on a slow server)."""
        if not self.burst:
            # A long-running worker's "total" is only what was due when it
            # started; later work would all go out in tail-sized batches.
            return self.options.batch_size
        left = self.total - self.claimed
        share = -(-left // max(1, self.options.lanes))
        return max(1, min(self.options.batch_size, max(share, 5)))

    def add(self, key: str, n: int = 1) -> None:
        if n:
            with self.lock:
                self.counts[key] += n

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
        """Back off the whole worker, not just one job: every lane would fail
        the same way, and hammering a down server only burns attempts."""
        with self.lock:
            self.down_until = self.clock() + timedelta(seconds=self.outage)
            self.outage = min(OUTAGE_MAX, self.outage * 2)
        log.warning("transport unavailable: %s", exc)
        self.halt(f"{exc}")

    def server_up(self) -> None:
        """Reachable again: the next outage starts with a short back-off, not
        the long one this outage grew to."""
        with self.lock:
            self.outage = OUTAGE_START

    def settle(self, batch: Batch[J], results: list[R], *, sent: int = 0,
               lost: int = 0) -> None:
        """Record ``results``; count them, and ``sent`` jobs the channel
        committed itself and ``lost`` ones whose lease was gone."""
        channel = self.channel
        accepted = 0
        # With nothing but jobs the channel committed itself, it is still
        # told the batch is over (email on SQLite moves them into their rows).
        if results or sent:
            with self.writing():
                accepted = channel.record(batch.token, results, self.clock())
        tally = Counter(TALLY[Outcome(r.outcome)] for r in results)
        tally["lost"] += len(results) - accepted + lost
        tally["sent"] += sent
        with self.lock:
            self.counts.update(+tally)


def _handback(run: _Run[J, M, R], jobs: Sequence[J], reason: str,
              outcome: Outcome = Outcome.RELEASE) -> list[R]:
    """Hand jobs back untried; settling gives their attempt back (a
    ``handback`` is due again at once, a ``release`` after a backoff)."""
    return [run.channel.result(job, outcome, reason, None) for job in jobs]


def _stopping(run: _Run[J, M, R], rest: Sequence[J]) -> list[R]:
    return _handback(run, rest, run.stopped or "worker stopping", Outcome.HANDBACK)


def _unreachable(run: _Run[J, M, R], conns: dict[Transport[M], Connection[M]],
                 transport: Transport[M], exc: TransportUnavailable,
                 rest: Sequence[J]) -> list[R]:
    """Unreachable for every job, not just this one: give the rest of the
    batch back now (attempts returned) and let the worker-wide backoff
    decide when to try again, instead of one connection attempt (and one
    timeout) per remaining job."""
    conns.pop(transport, None)
    run.server_down(exc)
    return _handback(run, rest, str(exc))


def _send_batch(run: _Run[J, M, R], batch: Batch[J],
                conns: dict[Transport[M], Connection[M]], lane: object) -> Steps:
    """Send one batch, as a generator: it yields where the lane would wait
    for someone else (its check's commit, a server's answer), so that the
    thread driving it turns to its other lanes meanwhile (see :func:`_drive`)."""
    channel = run.channel
    each = channel.settle_each
    results: list[R] = []
    sent = lost = 0
    held = False  # the channel keeps this lane's last delivered job, not yet committed
    overlap = True  # begin the next message before the check, if its connection can
    ahead: tuple[int, M] | None = None  # the next job's message, built while a reply was due
    lease_until = batch.lease_until
    half_lease = timedelta(seconds=run.policy.lease_seconds / 2)
    jobs = list(batch.jobs)
    renewal_checked = float("-inf")  # look at the lease before the first send, as always
    for index, job in enumerate(jobs):
        if each and results:
            run.settle(batch, results)
            results = []
        if run.stop.is_set():
            results.extend(_stopping(run, jobs[index:]))
            break
        checked = _monotonic()
        if checked - renewal_checked >= LEASE_CHECK_SECONDS:
            renewal_checked = checked
            now = run.clock()
            if now > lease_until - half_lease:
                with run.writing():
                    kept = channel.renew(batch.token, now)
                if not kept:
                    lost += len(jobs) - index
                    log.warning("lease %s lost mid-batch; stopping this batch", batch.token)
                    break
                lease_until = now + timedelta(seconds=run.policy.lease_seconds)
        # Built before the check below, so that the check is the last thing
        # between it and the wire (a message built for a reader who has just
        # left is thrown away).
        try:
            if ahead is not None and ahead[0] == index:
                message = ahead[1]
            else:
                message = channel.build(job, run.clock())
        except DispatchError as exc:
            # One job whose values cannot make a message (a bad name, say)
            # fails alone; the batch goes on.
            results.append(channel.result(job, Outcome.FAILED,
                                          f"cannot build the message: {exc}", None))
            continue
        transport = channel.transport(job)
        conn = conns.get(transport)
        begin: Callable[[M], Staged] | None = getattr(conn, "begin", None) if overlap else None
        staged: Staged | None = None
        if begin is not None:
            # The envelope carries nothing of the message: it goes out now,
            # and the bookkeeping below (the commit of the previous message,
            # this reader's re-check) is done while its round trip is under
            # way. The content waits for both.
            run.bucket.take()
            if run.stop.is_set():
                results.extend(_stopping(run, jobs[index:]))
                break
            try:
                staged = begin(message)
            except TransportUnavailable as exc:
                results.extend(_unreachable(run, conns, transport, exc, jobs[index:]))
                break
        # Checked again just before each send, for this one job: an
        # unsubscribe committed after the claim is honoured, and a cancelled
        # edition's claimed rows are not sent (a pause lets them finish). The
        # same call commits the lane's previous delivered job, if the channel
        # kept it: it is on disk before the next message's content leaves.
        channel.ask(lane, job)
        yield None
        ours, verdict = channel.check(lane, job)
        if held:
            held = False
            if not ours:
                if staged is not None:
                    staged.abort()
                lost += len(jobs) - index + 1
                sent -= 1
                log.warning("lease %s lost mid-batch; stopping this batch", batch.token)
                break
        if verdict is not None:
            if staged is not None:
                staged.abort()
                # A cancelled edition vetoes its every row: check the next
                # one before its envelope goes out, not after.
                overlap = False
            results.append(channel.result(job, verdict, None, None))
            continue
        overlap = True
        if staged is not None:
            # The content goes out; the next message is built while its
            # answer is on the way (a build that fails is tried again, and
            # fails its job, in its turn).
            staged.release()
            ahead = None
            if index + 1 < len(jobs):
                with contextlib.suppress(DispatchError):
                    ahead = (index + 1, channel.build(jobs[index + 1], run.clock()))
            yield None
            answer = staged.finish()
        else:
            run.bucket.take()
            if run.stop.is_set():  # stopped while waiting for the pace to allow a send
                results.extend(_stopping(run, jobs[index:]))
                break
            try:
                if conn is None:
                    conn = conns[transport] = transport.open()
                answer = conn.send(message)
            except TransportUnavailable as exc:
                results.extend(_unreachable(run, conns, transport, exc, jobs[index:]))
                break
        # The transport classified the answer; the loop knows no protocol codes.
        klass = answer.klass
        if klass is ResultClass.DELIVERED:
            if run.outage != OUTAGE_START:
                run.server_up()
            if channel.accept(lane, batch.token, job, answer):
                held = True
                sent += 1
            else:
                results.append(channel.result(job, klass.outcome, answer.text, answer))
        else:
            if klass is ResultClass.THROTTLED:
                run.bucket.slow_down()
            results.append(channel.result(job, klass.outcome, answer.text, answer))
        run.tick()
    if held and not channel.flush(lane):
        sent -= 1
        lost += 1
    run.settle(batch, results, sent=sent, lost=lost)


def _wake(seconds: float) -> float:
    """A lane's sleep, as the time it wants its next turn (at least 50 ms on)."""
    return time.monotonic() + max(0.05, seconds)


def _lane(run: _Run[J, M, R]) -> Steps:
    conns: dict[Transport[M], Connection[M]] = {}
    channel = run.channel
    lane = channel.lane()
    try:
        while not run.stop.is_set():
            now = run.clock()
            if run.down_until is not None and now < run.down_until:
                yield _wake((run.down_until - now).total_seconds())
                continue
            with run.claim_lock, run.writing():
                # A channel's caps count jobs in flight too, so checking and
                # claiming under one lock keeps this worker's lanes within them.
                if run.options.max_batches is not None and \
                        run.batches >= run.options.max_batches:
                    return
                run.batches += 1
                batch = channel.claim(run.owner, now, run.batch_limit())
                if batch is not None:
                    run.claimed += len(batch.jobs) + batch.skipped
            if batch is None:
                with run.lock:
                    run.stopped = run.stopped or "the hourly/daily sending cap is reached"
                if run.burst:
                    return
                yield _wake(60)
                continue
            run.add("suppressed", batch.skipped)
            if batch.jobs:
                yield from _send_batch(run, batch, conns, lane)
            elif not batch.skipped:
                if run.burst:
                    return
                with run.writing():
                    run.add("reaped", channel.reap(run.clock()))
                yield _wake(5.0)
    except Exception as exc:  # a bug must not leave the other lanes waiting for ever
        log.exception("sender lane failed")
        run.halt(f"internal error: {exc}")
        with run.lock:
            run.error = run.error or exc
        run.stop.set()
        raise
    finally:
        for conn in conns.values():
            conn.close()


def _drive(run: _Run[J, M, R], count: int) -> None:
    """One thread's lanes, in turn: each runs until it would wait (see
    :data:`Steps`), then the next one.

    Round robin over connections to one server: by the time the thread
    comes back to a lane, its server's answer is usually in the socket
    already, and its commit was made with the others' in one transaction,
    so the thread rarely blocks, and no other thread needs the GIL
    meanwhile. A lane waiting for the pace (the token bucket) holds up the
    others of its thread, which share that pace anyway; one backing off or
    idle sleeps without holding them up. A lane that fails stops the run
    (the stop event) and is reported when the thread's other lanes have
    wound down (their batches settled, the rest handed back).
    """
    live = [_lane(run) for _ in range(count)]
    wake = [0.0] * count
    failed: Exception | None = None
    while live:
        now = time.monotonic()
        stopping = run.stop.is_set()
        turned = False
        index = 0
        while index < len(live):
            if wake[index] > now and not stopping:
                index += 1
                continue
            turned = True
            try:
                wake[index] = next(live[index]) or 0.0
            except StopIteration:
                del live[index], wake[index]
                continue
            except Exception as exc:  # the lane reported it and set the stop event
                failed = failed or exc
                del live[index], wake[index]
                continue
            index += 1
        if not turned and live:
            run.stop.wait(min(wake) - now)
    if failed is not None:
        raise failed


def work(channel: Channel[J, M, R], options: Options, policy: RetryPolicy, *, owner: str,
         clock: Callable[[], datetime], due: Callable[[datetime], int], burst: bool = True,
         stop: threading.Event | None = None, progress: Progress | None = None,
         serialise_writes: bool = False) -> Tally:
    """Run ``options.lanes`` lanes over ``channel`` until nothing is due (``burst``)
    or ``stop`` is set. Expired leases are reaped first; ``due`` (how many
    jobs are due at a time) then sizes the last batches and the progress."""
    stopper = stop or threading.Event()
    run: _Run[J, M, R] = _Run(
        channel=channel, options=options, policy=policy, clock=clock, burst=burst,
        stop=stopper, owner=owner,
        # The pace waits on the stop event, so a slow rate never delays a stop.
        bucket=TokenBucket(options.rate, options.burst, sleep=stopper.wait),
        progress=progress, total=0, serialise_writes=serialise_writes)
    with run.writing():
        run.add("reaped", channel.reap(clock()))
    run.total = due(clock())
    channel.start(run.clock, run.writing)
    count = max(1, options.lanes)
    threads = -(-count // max(1, options.per_thread))
    lanes = [threading.Thread(target=_drive,
                              args=(run, count // threads + (i < count % threads)),
                              name=f"dispatch-send-{i}", daemon=True)
             for i in range(threads)]
    try:
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
        channel.stop()
    return Tally(run.counts, run.stopped, run.error)
