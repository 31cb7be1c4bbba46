"""Delivery inside ``dispatch run``: a stage for one pass, or a thread beside the passes.

``dispatch run --once`` ends its pass with :func:`burst_delivery`: send what
is due, then return. It is handed the run's stop event, so SIGTERM or Ctrl-C
ends it within a message: the rows still claimed go back to the queue.

The long-running ``dispatch run`` must not send from inside a pass: a pass
holds the run lock on the scheduler's one thread, so a large list at a
provider's rate (hours at 10 msg/s) would hold up every later pass and every
scheduled firing, and SIGTERM would wait for the whole send. There
:class:`BackgroundDelivery` drains the outbox continuously on its own thread
(``deliver(burst=False)``, which polls for newly queued and retry-due rows)
and stops the moment the run's stop event is set; the pass's delivery stage
only reports on it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from dispatch.config import Settings
from dispatch.delivery.engine import deliver
from dispatch.delivery.report import DeliveryReport
from dispatch.errors import DispatchError
from dispatch.store.engine import Store

if TYPE_CHECKING:
    from dispatch.stage import PassContext, Stage, StageReport

log = logging.getLogger(__name__)

RESTART_SECONDS = 30.0
"""After delivery fails as a whole (the database unreachable, a lane's bug),
wait this long before starting it again, so a long outage is not a busy loop."""
RELAY_SECONDS = 0.1
"""How often a relay looks at the run's stop event (the most it adds to a stop)."""


@contextmanager
def linked(outer: threading.Event | None) -> Iterator[threading.Event]:
    """A fresh stop event for one ``deliver`` call that is set as soon as
    ``outer`` (the run's) is.

    Not ``outer`` itself: deliver sets its stop event to halt its lanes when
    one of them fails, or, in a burst, when the server is down; that must
    end this delivery, not stop the whole run (the scheduler beside it).
    """
    inner = threading.Event()
    if outer is None:
        yield inner
        return
    finished = threading.Event()

    def relay() -> None:
        while not finished.is_set():
            if outer.wait(RELAY_SECONDS):
                inner.set()
                return

    thread = threading.Thread(target=relay, name="dispatch-delivery-stop", daemon=True)
    thread.start()
    try:
        yield inner
    finally:
        finished.set()
        thread.join()


def burst_delivery(stop: threading.Event | None = None) -> Stage:
    """The delivery stage of one pass: send what is due at the pass's ``now``,
    then return (rows waiting for a retry delay are left to a later pass or a
    worker), or stop early, handing claimed rows back, once ``stop`` is set."""

    def stage(ctx: PassContext) -> StageReport:
        from dispatch.stage import StageReport

        with linked(stop) as inner:
            report = deliver(ctx.store, ctx.settings, ctx.now, burst=True, stop=inner)
        return StageReport("delivery", report.summary())

    return stage


def delivery_stage(ctx: PassContext) -> StageReport:
    """:func:`burst_delivery` with no stop event (``default_stages`` lists it)."""
    return burst_delivery()(ctx)


class BackgroundDelivery:
    """``deliver(burst=False)`` on its own thread until ``stop`` is set.

    The run's stop event reaches ``deliver`` at once (through :func:`linked`),
    which is what makes shutdown prompt: every sender lane looks at it before
    each message, and rows claimed but not sent are released (reported as
    handed back). A delivery that ends without a stop request (a lane
    failed) is reported by :meth:`stage` and started again.
    """

    def __init__(self, settings: Settings, store: Store, clock: Callable[[], datetime],
                 stop: threading.Event) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.stop = stop
        self._lock = threading.Lock()
        self._handed = 0
        self._current = 0
        self._error: str | None = None
        self.last: DeliveryReport | None = None
        """The report of the most recent ``deliver`` run, once it has returned."""
        self._thread = threading.Thread(target=self._loop, name="dispatch-delivery",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        """Wait for the lanes to finish the message in hand and release the rest."""
        if self._thread.is_alive():
            self._thread.join()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _progress(self, done: int, _total: int) -> None:
        with self._lock:
            self._current = done

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                with linked(self.stop) as inner:
                    # A failure is reported until the next start, which
                    # fails again at once if nothing has changed.
                    with self._lock:
                        self._error = None
                    report = deliver(self.store, self.settings, self.clock(), burst=False,
                                     clock=self.clock, stop=inner, progress=self._progress)
            except Exception as exc:  # the thread must not die quietly and stop delivery
                if not isinstance(exc, DispatchError):
                    log.exception("background delivery failed")
                with self._lock:
                    self._error = str(exc)
            else:
                with self._lock:
                    self.last = report
                    # Without a stop request, deliver(burst=False) only returns
                    # when a lane failed (and stopped the others).
                    self._error = None if self.stop.is_set() else (report.stopped or "stopped")
            with self._lock:
                self._handed += self._current
                self._current = 0
            if not self.stop.is_set():
                log.warning("background delivery stopped (%s); starting again in %gs",
                            self._error, RESTART_SECONDS)
                self.stop.wait(RESTART_SECONDS)

    def stage(self, _ctx: PassContext) -> StageReport:
        """The pass's delivery line: what the thread has done, never any sending."""
        from dispatch.stage import StageReport

        with self._lock:
            handed, error = self._handed + self._current, self._error
        if error is not None:
            return StageReport("delivery", f"failed: {error} (retrying in the background)",
                               failed=True)
        return StageReport("delivery", f"running in the background: {handed} message(s) "
                                       "handed to the transport so far")
