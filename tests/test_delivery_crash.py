"""SIGKILL a worker process halfway through 10,000 messages, then start
another: everyone gets at least one copy, duplicates are bounded by what was
in flight at the kill, and the counts reconcile."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.delivery_kit import T0, Sink, edition, seed, start_sink

from dispatch.outbox import edition_status, queue_edition
from dispatch.store.engine import Store
from dispatch.store.schema import outbox

REPO = Path(__file__).resolve().parent.parent
N = 10_000

WORKER = """
import sys
from datetime import datetime
from pathlib import Path
from tests.delivery_kit import smtp_config
from dispatch.config import load_settings
from dispatch.delivery import deliver
from dispatch.store import open_store

root, url, port, start = sys.argv[1:5]
settings = load_settings(Path(root))
# The real clock, from ``start`` on.
report = deliver(open_store(url), settings, datetime.fromisoformat(start),
                 config=smtp_config(int(port), connections=4, batch_size=50))
print(report.reaped, report.sent)
"""


@pytest.mark.slow
def test_sigkill_halfway_loses_nothing(store: Store, database_url: str, site_root: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCH_SECRET_KEY", "test-secret")
    # The full 10,000 on SQLite; PostgreSQL (SKIP LOCKED claims, the part that
    # differs) with fewer, to keep the suite quick.
    n = N if store.is_sqlite else 2_000
    emails = seed(store, n)
    queue_edition(store, edition(), ["main"], T0)
    halfway = threading.Event()
    sink = Sink(on_accept=lambda rcpt, count: halfway.set() if count >= n // 2 else None)
    ctl = start_sink(sink)
    # The worktree's own code first (not whatever copy the venv installed).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(REPO), str(REPO / "src")))}

    def worker(start: datetime, **kwargs: object) -> subprocess.Popen[str]:
        # Workers are processes, like in production; the sink keeps this one.
        return subprocess.Popen([sys.executable, "-c", WORKER, str(site_root), database_url,
                                 str(ctl.port), start.isoformat()], env=env, text=True,
                                **kwargs)  # type: ignore[call-overload]

    proc = worker(T0)
    try:
        assert halfway.wait(120), "the worker never got halfway"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        with store.read() as conn:
            in_flight = conn.execute(select(func.count()).select_from(outbox)
                                     .where(outbox.c.status == "sending")).scalar_one()
        before = edition_status(store, "e1")
        assert before.reconciles and 0 < before.sent < n and in_flight > 0
        # A new worker, once the dead one's leases have expired.
        second = worker(T0 + timedelta(minutes=30), stdout=subprocess.PIPE)
        out, _ = second.communicate(timeout=180)
        reaped, sent = map(int, out.split())
    finally:
        if proc.poll() is None:
            proc.kill()
        ctl.stop()
    assert reaped == in_flight and sent == n - before.sent
    counts = sink.counts()
    assert set(counts) == set(emails)  # every recipient has at least one copy
    duplicates = sum(n - 1 for n in counts.values())
    assert duplicates <= in_flight
    after = edition_status(store, "e1")
    assert (after.sent, after.pending, after.failed) == (n, 0, 0) and after.reconciles
