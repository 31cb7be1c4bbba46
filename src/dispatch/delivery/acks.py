"""Group commit of accepted messages (and the per-send checks): each lane
waits for its own row only.

A message the server accepted must be on disk as sent before its lane
sends the next one on that connection; then a crash (even ``kill -9``)
can send again at most the one message per connection whose reply was
still on its way. One commit per message would serialise the lanes on the
database, so commits are grouped (:class:`AckCommitter`): a lane hands in
its last accepted row with the next recipient to check (is the reader
still active, the edition not cancelled?), and whoever commits answers
every request handed in so far in one transaction: one statement records
the whole group's rows (:class:`~dispatch.outbox.lease.AckWriter`), one
more reads the statuses of every recipient in the group. A lane builds its
next message before it hands in its request, so the check is the last
thing between that message and the wire.

On SQLite (WAL, ``synchronous=NORMAL``) a commit is a write into the WAL
file without an fsync: it survives the death of the process, which is what
this guards against, and only an operating-system crash or power cut can
lose the last commits (then those few messages may go out twice). On
PostgreSQL a commit is durable when it returns; grouping spreads its fsync
over every lane that had a row ready.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime

from dispatch.outbox.lease import AckWriter, Verdict
from dispatch.store.engine import Store

log = logging.getLogger(__name__)


class AckSlot:
    """One lane's outstanding acknowledgement (a lane has at most one).

    ``gate`` is a plain lock held from :meth:`AckCommitter.submit` until the
    request is answered: a waiting lane blocks on it and whoever commits
    the request releases it. A lock costs a fraction of an Event (a
    Condition and a fresh waiter lock per wait).
    """

    __slots__ = ("done", "error", "gate", "kept", "verdict")

    def __init__(self) -> None:
        self.gate = threading.Lock()
        self.done = True
        self.kept = True
        self.verdict: Verdict = "send"
        self.error: BaseException | None = None


_TAKE_OVER = True
"""What a leader hands the committer thread when requests arrived during its commit."""


class AckCommitter:
    """Group commit for a worker's lanes: the first lane to wait commits.

    A lane that waits while no commit is under way leads: it commits, in
    its own thread, every request handed over so far (its own among them).
    Lanes that arrive meanwhile wait; if any did, the leader hands them to
    a committer thread, which commits group after group until nobody is
    waiting, and steps aside. So with one lane, or lanes that are mostly
    waiting for a distant server, nobody waits for a thread to be woken and
    scheduled (on a busy machine that can take milliseconds, twice per
    message), and lanes that do pile up are grouped as before.
    """

    def __init__(self, store: Store, clock: Callable[[], datetime],
                 writing: Callable[[], AbstractContextManager[None]]) -> None:
        self.store = store
        self.clock = clock
        self.writing = writing  # the worker's SQLite write turn (a context manager)
        self.lock = threading.Lock()
        self.waiting: list[_Request] = []
        self.leading = False  # a commit is under way (a lane's, or the thread's)
        self.kick: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self.commits = 0
        self.rows = 0
        self.writer: AckWriter | None = None
        self.thread = threading.Thread(target=self._run, name="dispatch-acks", daemon=True)
        self.thread.start()

    def submit(self, slot: AckSlot, ack: tuple[str, int] | None,
               check: tuple[int, str] | None = None) -> None:
        """Hand over an accepted row ``(token, row id)`` and/or a recipient to
        check ``(subscriber id, edition id)``; :meth:`wait` then waits for both."""
        if not slot.gate.acquire(blocking=False):
            raise RuntimeError("a lane submitted twice without waiting")
        slot.done = False
        slot.kept = True
        with self.lock:
            self.waiting.append((slot, ack, check))

    def wait(self, slot: AckSlot) -> bool:
        """Until ``slot``'s request is committed (by this lane, if nobody is
        committing now); whether its row's lease was still ours."""
        with self.lock:
            lead = not slot.done and not self.leading
            if lead:
                self.leading = True
                group, self.waiting = self.waiting, []
        if lead:
            self._commit(group)
            with self.lock:
                if self.waiting:
                    self.kick.put(_TAKE_OVER)  # still leading: the thread carries on
                else:
                    self.leading = False
        slot.gate.acquire()  # released by whoever committed the request
        slot.gate.release()
        if slot.error is not None:
            error, slot.error = slot.error, None
            raise error
        return slot.kept

    def close(self) -> None:
        """Commit what is queued, then stop."""
        self.kick.put(not _TAKE_OVER)
        self.thread.join()
        if self.writer is not None:
            self.writer.close()

    def _run(self) -> None:
        while True:
            take_over = self.kick.get()  # blocks until a leader hands over, or close
            while True:
                with self.lock:
                    group, self.waiting = self.waiting, []
                    if not group:
                        if take_over:
                            self.leading = False
                        break
                self._commit(group)
            if not take_over:
                return

    def _commit(self, group: list[_Request]) -> None:
        acked = [(slot, ack) for slot, ack, _ in group if ack is not None]
        checked = [(slot, check) for slot, _, check in group if check is not None]
        try:
            kept, verdicts = self._write([a for _, a in acked], [c for _, c in checked])
        except BaseException as exc:  # every waiting lane learns of it; none hangs
            log.exception("could not record accepted messages")
            for slot, _, _ in group:
                slot.error = exc
                slot.done = True
                slot.gate.release()
            return
        if acked:
            self.commits += 1
            self.rows += len(acked)
        for (slot, _), ok in zip(acked, kept, strict=True):
            slot.kept = ok
        for (slot, _), verdict in zip(checked, verdicts, strict=True):
            slot.verdict = verdict
        for slot, _, _ in group:
            slot.done = True
            slot.gate.release()
    def _write(self, acks: list[tuple[str, int]], checks: list[tuple[int, str]]
               ) -> tuple[list[bool], list[Verdict]]:
        for attempt in (1, 2):
            if self.writer is None:
                self.writer = AckWriter(self.store)
            try:
                if not acks:
                    return self.writer.commit(acks, checks, self.clock())
                with self.writing():
                    return self.writer.commit(acks, checks, self.clock())
            except Exception:
                # One fresh try: a database restarted since the connection
                # was opened answers a new one. (The acks and the checks are
                # one transaction: a failure before the commit undid both.)
                self.writer.discard()
                self.writer = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


_Request = tuple[AckSlot, tuple[str, int] | None, tuple[int, str] | None]
