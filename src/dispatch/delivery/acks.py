"""Group commit of accepted messages (and the per-send checks): each lane
waits for its own row only.

A message the server accepted must be on disk as sent before its lane
sends the next one on that connection; then a crash (even ``kill -9``)
can send again at most the one message per connection whose reply was
still on its way. One commit per message would serialise the lanes on the
database, so the lanes hand their accepted rows to one committer thread,
which writes whatever has gathered since its last commit in one short
transaction (:class:`~dispatch.outbox.lease.AckWriter`) and wakes each lane
whose row it holds. A lane does not wait right away: it checks and builds
its next message first, and waits only before putting it on the wire, so
the commit mostly overlaps work the lane had to do anyway. The check made
just before each send (is the reader still active, the edition not
cancelled?) rides along: the lane hands over its next recipient with its
last accepted row, and the committer answers both in the same pass, after
the commit.

On SQLite (WAL, ``synchronous=NORMAL``) a commit is a write into the WAL
file without an fsync: it survives the death of the process, which is what
this guards against, and only an operating-system crash or power cut can
lose the last commits (then those few messages may go out twice). On
PostgreSQL a commit is durable when it returns; grouping spreads its fsync
over every lane that had a row ready.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime

from dispatch.outbox.lease import AckWriter, Verdict
from dispatch.store.engine import Store

log = logging.getLogger(__name__)


class AckSlot:
    """One lane's outstanding acknowledgement (a lane has at most one)."""

    __slots__ = ("done", "error", "kept", "verdict")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.done.set()  # nothing outstanding
        self.kept = True
        self.verdict: Verdict = "send"
        self.error: BaseException | None = None

    def wait(self) -> bool:
        """Block until the row is committed; whether the lease was still ours."""
        self.done.wait()
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return self.kept


class AckCommitter:
    """The committer thread shared by a worker's lanes."""

    def __init__(self, store: Store, clock: Callable[[], datetime],
                 writing: Callable[[], AbstractContextManager[None]]) -> None:
        self.store = store
        self.clock = clock
        self.writing = writing  # the worker's SQLite write turn (a context manager)
        self.queue: collections.deque[_Request] = collections.deque()
        self.cond = threading.Condition()
        self.closing = False
        self.commits = 0
        self.rows = 0
        self.writer: AckWriter | None = None
        self.thread = threading.Thread(target=self._run, name="dispatch-acks", daemon=True)
        self.thread.start()

    def submit(self, slot: AckSlot, ack: tuple[str, int] | None,
               check: tuple[int, str] | None = None) -> None:
        """Hand over an accepted row ``(token, row id)`` and/or a recipient to
        check ``(subscriber id, edition id)``; ``slot.wait()`` then waits for both."""
        slot.done.clear()
        slot.kept = True
        with self.cond:
            self.queue.append((slot, ack, check))
            self.cond.notify()

    def close(self) -> None:
        """Commit what is queued, then stop."""
        with self.cond:
            self.closing = True
            self.cond.notify()
        self.thread.join()
        if self.writer is not None:
            self.writer.close()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.queue and not self.closing:
                    self.cond.wait()
                if not self.queue:
                    return
                group = list(self.queue)
                self.queue.clear()
            self._commit(group)

    def _commit(self, group: list[_Request]) -> None:
        acked = [(slot, ack) for slot, ack, _ in group if ack is not None]
        checked = [(slot, check) for slot, _, check in group if check is not None]
        try:
            kept, verdicts = self._write([a for _, a in acked], [c for _, c in checked])
        except BaseException as exc:  # every waiting lane learns of it; none hangs
            log.exception("could not record accepted messages")
            for slot, _, _ in group:
                slot.error = exc
                slot.done.set()
            return
        if acked:
            self.commits += 1
            self.rows += len(acked)
        for (slot, _), ok in zip(acked, kept, strict=True):
            slot.kept = ok
        for (slot, _), verdict in zip(checked, verdicts, strict=True):
            slot.verdict = verdict
        for slot, _, _ in group:
            slot.done.set()

    def _write(self, acks: list[tuple[str, int]], checks: list[tuple[int, str]]
               ) -> tuple[list[bool], list[Verdict]]:
        kept: list[bool] | None = None
        for attempt in (1, 2):
            if self.writer is None:
                self.writer = AckWriter(self.store)
            try:
                if kept is None:  # once committed, a retry only redoes the checks
                    if acks:
                        with self.writing():
                            kept = self.writer.write(acks, self.clock())
                    else:
                        kept = []
                return kept, self.writer.check(checks)
            except Exception:
                # One fresh try: a database restarted since the connection
                # was opened answers a new one.
                self.writer.discard()
                self.writer = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


_Request = tuple[AckSlot, tuple[str, int] | None, tuple[int, str] | None]
