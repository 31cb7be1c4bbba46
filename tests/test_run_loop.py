"""``dispatch run`` delivers beside its passes and stops promptly.

A real ``dispatch run`` sends a 300-recipient edition at 2 messages/s (two
and a half minutes of sending) into a slow local SMTP sink. Passes carry on
while it sends, SIGTERM ends the process within a bounded wait, the rows it
had claimed go back to the queue, and a following ``dispatch run --once``
(one pass, then deliver what is due, then exit) sends exactly the rest:
every recipient gets one message, nobody two, and the counts reconcile.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.delivery_kit import edition, free_port, seed
from tests.sitekit import write_article
from tests.smtp_sink import SinkProcess

from dispatch.config import load_settings
from dispatch.delivery.stage import BackgroundDelivery, burst_delivery
from dispatch.outbox import edition_status, queue_edition
from dispatch.pipeline import run_pass
from dispatch.store import open_store
from dispatch.store.engine import Store
from dispatch.store.schema import outbox

N = 300
RATE = 2
EXIT_BOUND = 30.0
"""Seconds SIGTERM may take to end the run: a bound, not an expected speed
(sending the rest at the configured rate would take over two minutes)."""
_HANDED_BACK = re.compile(r"(\d+) handed back")


class Lines:
    """A child's stdout, line by line, readable with a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.stream = proc.stdout
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.stream:
            self.lines.put(line)

    def wait_for(self, condition: Callable[[list[str]], bool], timeout: float,
                 what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self.seen):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}; output: {self.seen}")
            try:
                self.seen.append(self.lines.get(timeout=min(left, 0.5)))
            except queue.Empty:
                continue

    def rest(self) -> str:
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                return "".join(self.seen)


def env_for(port: int, *, rate: float = 0) -> dict[str, str]:
    url = f"smtp://127.0.0.1:{port}?tls=none&connections=2" + (f"&rate={rate:g}" if rate else "")
    return {**os.environ, "DISPATCH_SMTP_URL": url, "DISPATCH_SECRET_KEY": "run-loop-secret",
            "COLUMNS": "200"}


def passes(lines: list[str]) -> int:
    return sum(1 for line in lines if line.startswith("loaded "))


def leased(store: Store) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(outbox).where(
            (outbox.c.status == "sending") | outbox.c.lease_owner.is_not(None))).scalar_one())


def test_sigterm_stops_delivery_promptly_and_loses_nothing(site_root: Path,
                                                           tmp_path: Path) -> None:
    write_article(site_root, "a.md", "title: A\ndate: 2020-01-01")
    # Rows a stopping worker hands back are due again at once, so the
    # `--once` run below finds every unsent row due.
    settings = load_settings(site_root)
    store = open_store(settings.database_url)
    emails = seed(store, N)
    # Queued a minute ago by the real clock, so every row is due for the run.
    queue_edition(store, edition(), ["main"], datetime.now(UTC) - timedelta(minutes=1))
    sink = SinkProcess(delay_ms=20)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dispatch", "run", "--interval", "1", "--poll", "1",
         "--root", str(site_root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env_for(sink.port, rate=RATE))
    try:
        out = Lines(proc)
        # Passes go on while the list is being sent: two passes have finished
        # and delivery has begun, with most of the list still to go.
        out.wait_for(lambda seen: passes(seen) >= 2 and sink.count() >= 2, 90,
                     "two passes while sending")
        assert sink.count() < N
        assert any("delivery: running in the background" in line for line in out.seen)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(EXIT_BOUND)
        except subprocess.TimeoutExpired:
            raise AssertionError("dispatch run did not stop after SIGTERM") from None
        output, errors = out.rest(), proc.stderr.read() if proc.stderr else ""
        assert proc.returncode == 0, errors
        assert "Traceback" not in errors and "stopped" in output

        first = sink.received(tmp_path / "first.tsv")
        status = edition_status(store, "e1")
        # Nothing lost: what was not sent is queued again, no lease is left.
        assert 0 < status.sent < N and status.sent == len(first)
        assert status.pending == N - status.sent and status.reconciles
        assert leased(store) == 0
        handed_back = _HANDED_BACK.search(output)
        assert handed_back is not None and int(handed_back.group(1)) > 0, output

        # `run --once`: one pass, then deliver everything due, then exit.
        once = subprocess.run(
            [sys.executable, "-m", "dispatch", "run", "--once", "--root", str(site_root)],
            capture_output=True, text=True, env=env_for(sink.port), timeout=300)
        assert once.returncode == 0, once.stderr
        assert f"delivery: sent {N - status.sent}," in once.stdout
        received = sink.received(tmp_path / "all.tsv")
    finally:
        if proc.poll() is None:
            proc.kill()
        sink.stop()

    # Nothing sent twice, nobody missed, and the counts reconcile.
    per_rcpt = Counter(r for r, _ in received)
    assert set(per_rcpt) == set(emails) and max(per_rcpt.values()) == 1
    assert received[:len(first)] == first
    final = edition_status(store, "e1")
    assert (final.sent, final.pending, final.failed) == (N, 0, 0) and final.reconciles
    assert leased(store) == 0
    store.dispose()


def test_background_delivery_reports_failure_and_ends_when_stopped(
        site_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A delivery that cannot start (here a bad SMTP URL) shows as a failed
    delivery stage in every pass report instead of a thread dying unseen,
    and the thread still ends as soon as the run's stop event is set."""
    settings = load_settings(site_root)
    # Set after the settings are read: load_settings itself refuses a bad
    # URL in the environment, and the delivery reads the variable again.
    monkeypatch.setenv("DISPATCH_SMTP_URL", "smtp://127.0.0.1:not-a-port")
    store = open_store(settings.database_url)
    stop = threading.Event()
    background = BackgroundDelivery(settings, store, lambda: datetime.now(UTC), stop)
    report = run_pass(settings, store, datetime.now(UTC), stages=[("delivery", background.stage)])
    assert not report.stages[0].failed  # not started yet: nothing to report
    background.start()
    deadline = time.monotonic() + 60
    while not (stage := background.stage(None)).failed:  # type: ignore[arg-type]
        assert time.monotonic() < deadline, "the failure was never reported"
        time.sleep(0.02)  # polling the thread's state, not waiting for time to pass
    assert "DISPATCH_SMTP_URL" in stage.summary and "retrying" in stage.summary
    report = run_pass(settings, store, datetime.now(UTC), stages=[("delivery", background.stage)])
    assert report.stages[0].failed and not report.ok
    stop.set()
    background.join()  # waits out nothing: RESTART_SECONDS is cut short by the stop
    assert not background.running
    store.dispose()


def test_a_burst_halted_by_a_down_server_does_not_stop_the_run(
        site_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """deliver sets its stop event to halt a burst when the server is down;
    the run's own stop event, handed to the stage, must stay clear."""
    monkeypatch.setenv("DISPATCH_SMTP_URL", f"smtp://127.0.0.1:{free_port()}?tls=none")
    monkeypatch.setenv("DISPATCH_SECRET_KEY", "run-loop-secret")
    settings = load_settings(site_root)
    store = open_store(settings.database_url)
    seed(store, 5)
    now = datetime.now(UTC)
    queue_edition(store, edition(), ["main"], now - timedelta(minutes=1))
    stop = threading.Event()
    report = run_pass(settings, store, now, stages=[("delivery", burst_delivery(stop))])
    summary = report.stages[0].summary
    assert "sent 0" in summary and "handed back" in summary, summary
    assert not stop.is_set()
    assert edition_status(store, "e1").pending == 5 and leased(store) == 0
    store.dispose()
