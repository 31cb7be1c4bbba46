"""Scale-out on PostgreSQL: several real ``dispatch worker`` processes, one database.

* Three ``dispatch worker --burst`` processes drain 20,000 messages into one
  SMTP server: every recipient receives exactly one message (with its own
  Message-ID), every row was claimed exactly once (attempts = 1, and no
  worker handed a row back, which would return its attempt and could hide a
  claim → release → claim), and the counts reconcile.
* A worker killed with SIGKILL while it holds leases loses nothing: a second
  worker, started after the kill and left running (not ``--burst``, so it
  polls and reaps expired leases), reclaims the dead one's rows once their
  (short) lease expires and sends them.

Both need DISPATCH_TEST_POSTGRES_URL (``.ci/run`` sets it) and skip without it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.delivery_kit import T0, edition, seed
from tests.smtp_sink import SinkProcess

from dispatch.config import load_settings
from dispatch.outbox import edition_status, queue_edition
from dispatch.render import MessageFactory, Recipient
from dispatch.store import open_store
from dispatch.store.engine import Store
from dispatch.store.schema import outbox

REPO = Path(__file__).resolve().parent.parent
DISPATCH = REPO / ".venv" / "bin" / "dispatch"
SECRET = "scaleout-secret"
_SENT = re.compile(r"\bsent (\d+)")
_REAPED = re.compile(r"(\d+) expired leases reclaimed")
_RELEASED = re.compile(r"(\d+) handed back")
_LOST = re.compile(r"(\d+) late acks refused")


@pytest.fixture
def pg(postgres_url: str) -> Iterator[tuple[str, Store]]:
    store = open_store(postgres_url)
    assert store.is_postgres
    yield postgres_url, store
    store.dispose()


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    out: Path

    @property
    def owner_prefix(self) -> str:
        # Leases are stamped "<host>:<pid>/<random>" (outbox.lease.new_token).
        return f"%:{self.proc.pid}/%"

    def summary(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")


def configure(root: Path, *, lease_seconds: float, batch_size: int) -> None:
    toml = root / "dispatch.toml"
    toml.write_text(toml.read_text() + f"\n[delivery]\nbatch_size = {batch_size}\n"
                    f"lease_seconds = {lease_seconds}\n")


def start_worker(root: Path, url: str, port: int, name: str, *, burst: bool,
                 connections: int = 4) -> Worker:
    out = root / f"{name}.out"
    env = {**os.environ, "DISPATCH_DATABASE_URL": url, "DISPATCH_SECRET_KEY": SECRET,
           "DISPATCH_SMTP_URL": f"smtp://127.0.0.1:{port}?tls=none&connections={connections}"}
    args = [str(DISPATCH), "worker", "--root", str(root)] + (["--burst"] if burst else [])
    with open(out, "wb") as fh:
        proc = subprocess.Popen(args, env=env, stdout=fh, stderr=subprocess.STDOUT)
    return Worker(proc, out)


def wait_until(condition: object, timeout: float, what: str) -> None:
    """Bounded polling for a condition (never a sleep standing in for one)."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def expected_ids(root: Path, emails: list[str]) -> dict[str, str]:
    factory = MessageFactory(edition(), load_settings(root))
    return {e: factory.message_id(Recipient(e, None, "https://x.test/u", "https://x.test/w"))
            for e in emails}


def attempts_histogram(store: Store) -> dict[int, int]:
    with store.read() as conn:
        return {int(a): int(n) for a, n in conn.execute(
            select(outbox.c.attempts, func.count()).group_by(outbox.c.attempts))}


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(900)  # bounds, not expectations: the machine is shared
def test_three_worker_processes_drain_20000_exactly_once(pg: tuple[str, Store],
                                                          site_root: Path,
                                                          tmp_path: Path) -> None:
    url, store = pg
    n = 20_000
    emails = seed(store, n)
    queue_edition(store, edition(), ["main"], T0)
    configure(site_root, lease_seconds=300, batch_size=100)
    sink = SinkProcess()
    try:
        workers = [start_worker(site_root, url, sink.port, f"w{i}", burst=True)
                   for i in range(3)]
        for w in workers:
            assert w.proc.wait(600) == 0, w.summary()
        received = sink.received(tmp_path / "received.tsv")
    finally:
        for w in workers:
            if w.proc.poll() is None:
                w.proc.kill()
        sink.stop()

    # The server's view: each recipient exactly once, each with its own Message-ID.
    per_rcpt = Counter(r for r, _ in received)
    assert len(received) == n and set(per_rcpt) == set(emails)
    assert max(per_rcpt.values()) == 1
    mids = expected_ids(site_root, emails)
    assert all(mid == mids[r] for r, mid in received)
    assert len({mid for _, mid in received}) == n
    # The outbox's view: every row sent, each claimed exactly once (a claim
    # increments attempts), no lease left behind, and the counts reconcile.
    assert attempts_histogram(store) == {1: n}
    with store.read() as conn:
        leftover = conn.execute(select(func.count()).select_from(outbox).where(
            (outbox.c.status != "sent") | outbox.c.lease_owner.is_not(None))).scalar_one()
    assert leftover == 0
    status = edition_status(store, "e1")
    assert (status.sent, status.pending, status.failed) == (n, 0, 0) and status.reconciles
    # And the work really was shared by the three processes.
    shares = [int(m.group(1)) for w in workers if (m := _SENT.search(w.summary()))]
    assert len(shares) == 3 and sum(shares) == n, [w.summary() for w in workers]
    assert all(s > 0 for s in shares), shares
    # Each worker's own summary: it released no row (a release gives the
    # attempt back, so attempts = 1 alone cannot rule out claim → release →
    # claim) and had no outcome refused for a lost lease.
    for w in workers:
        summary = w.summary()
        assert _RELEASED.search(summary) is None, summary  # "N handed back" only when N > 0
        assert _LOST.search(summary) is None, summary
        assert _REAPED.search(summary) is None, summary


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(900)  # bounds, not expectations: the machine is shared
def test_sigkilled_worker_rows_are_reclaimed_after_the_lease(pg: tuple[str, Store],
                                                            site_root: Path,
                                                            tmp_path: Path) -> None:
    url, store = pg
    n = 1_500
    emails = seed(store, n)
    queue_edition(store, edition(), ["main"], T0)
    configure(site_root, lease_seconds=4, batch_size=25)
    sink = SinkProcess(delay_ms=5)  # slow enough that the victim is mid-batch when killed
    survivor: Worker | None = None
    victim = start_worker(site_root, url, sink.port, "victim", burst=True, connections=2)
    try:
        def held_by_victim() -> int:
            with store.read() as conn:
                return int(conn.execute(select(func.count()).select_from(outbox).where(
                    outbox.c.status == "sending",
                    outbox.c.lease_owner.like(victim.owner_prefix))).scalar_one())

        wait_until(lambda: sink.count() >= 100, 120, "the victim to start sending")
        # Freeze the victim before looking: a running victim may finish its
        # batches between our look and the kill and die holding nothing. A
        # frozen one changes nothing more (after a moment for a statement
        # already on the wire to land), so what we count is what it dies with.
        orphaned = 0
        deadline = time.monotonic() + 120
        while not orphaned:
            assert victim.proc.poll() is None, "the victim finished before it could be killed"
            assert time.monotonic() < deadline, "the victim never held a lease when frozen"
            victim.proc.send_signal(signal.SIGSTOP)
            time.sleep(0.3)
            orphaned = held_by_victim()
            if not orphaned:
                victim.proc.send_signal(signal.SIGCONT)
                time.sleep(0.05)
        victim.proc.send_signal(signal.SIGKILL)
        assert victim.proc.wait(30) == -signal.SIGKILL
        # The survivor keeps running (not --burst): it polls for work and
        # reaps expired leases, as a long-running `dispatch worker` does.
        survivor = start_worker(site_root, url, sink.port, "survivor", burst=False,
                                connections=2)

        def all_sent() -> bool:
            return edition_status(store, "e1").sent == n

        wait_until(all_sent, 300, "every row to be sent")
        survivor.proc.send_signal(signal.SIGTERM)
        assert survivor.proc.wait(30) == 0, survivor.summary()
        received = sink.received(tmp_path / "received.tsv")
    finally:
        for w in (victim, survivor):
            if w is not None and w.proc.poll() is None:
                w.proc.kill()
        sink.stop()

    per_rcpt = Counter(r for r, _ in received)
    assert set(per_rcpt) == set(emails)  # nothing lost
    # Rows the victim held when it died were claimed a second time by the
    # survivor (attempts 2); every other row exactly once.
    histogram = attempts_histogram(store)
    reclaimed = histogram.get(2, 0)
    assert set(histogram) <= {1, 2} and reclaimed > 0, histogram
    assert reclaimed == orphaned  # exactly the rows it died holding
    match = _REAPED.search(survivor.summary())
    assert match is not None and int(match.group(1)) == reclaimed, survivor.summary()
    # Duplicates only from messages in flight at the kill (sent, not yet acked).
    duplicates = sum(c - 1 for c in per_rcpt.values())
    assert duplicates <= reclaimed
    status = edition_status(store, "e1")
    assert (status.sent, status.pending, status.failed) == (n, 0, 0) and status.reconciles
