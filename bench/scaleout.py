"""Scale-out: 1, 2 and 4 ``dispatch worker`` processes on one edition, one PostgreSQL.

Run:  .venv/bin/python bench/scaleout.py --postgres postgresql://postgres@127.0.0.1:5432/test
                                   [--recipients 2000] [--connections 4] [--delay-ms 10]

(the URL may come from DISPATCH_BENCH_POSTGRES_URL or DISPATCH_TEST_POSTGRES_URL
instead). ``bench/delivery.py --postgres URL`` runs this same section after its
own figures, through :func:`run_scaleout`.

The SMTP sink (tests/smtp_sink.py, its own process) delays every reply by
``--delay-ms`` to stand in for a remote server's round trip. For each worker
count a fresh edition (the example site's first article, rendered once) is
queued to the same subscribers, then that many real ``dispatch worker
--burst`` processes — each with ``--connections`` SMTP connections — drain it.
Reported per run: wall-clock msg/s from starting the processes to the last
one exiting (all outbox bookkeeping and process start-up included), the
ceiling of
processes × connections / (4 × delay) (no SMTP pipelining: four replies per
message), the steady rate measured by the sink between 10% and 90% of the
messages (no start-up, no tail), and both speed-ups over the 1-process run
of the same invocation (the baseline). Everything happens in a throw-away
schema, dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # for tests.smtp_sink and tests.pg_schema, shared with the tests
NOW = datetime.now(UTC)  # queued rows are due at once for the real-clock workers
DISPATCH = REPO / ".venv" / "bin" / "dispatch"
SECRET = "bench-secret"


class SinkLike(Protocol):
    port: int

    def count(self) -> int: ...


def make_site(tmp: Path, batch_size: int) -> Path:
    root = tmp / "site"
    root.mkdir()
    (root / "content").symlink_to(REPO / "content")
    (root / "dispatch.toml").write_text(
        (REPO / "dispatch.toml").read_text(encoding="utf-8")
        .replace("[delivery]\n", f"[delivery]\nbatch_size = {batch_size}\n", 1),
        encoding="utf-8")
    return root


def run_workers(root: Path, url: str, sink: SinkLike, processes: int, connections: int,
                expected: int) -> tuple[float, float]:
    """Run the workers to the end; return (wall seconds, steady msg/s).

    The steady rate is measured by the sink between 10% and 90% of the
    messages accepted: no process start-up, no last-batch tail.
    """
    env = {**os.environ, "DISPATCH_DATABASE_URL": url, "DISPATCH_SECRET_KEY": SECRET,
           "DISPATCH_SMTP_URL": f"smtp://127.0.0.1:{sink.port}?tls=none&connections={connections}"}
    before = sink.count()
    low, high = expected // 10, expected - expected // 10
    marks: dict[int, float] = {}
    start = time.perf_counter()
    procs = [subprocess.Popen([str(DISPATCH), "worker", "--burst", "--root", str(root)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(processes)]
    while any(p.poll() is None for p in procs):
        done = sink.count() - before
        for mark in (low, high):
            if done >= mark and mark not in marks:
                marks[mark] = time.perf_counter()
        time.sleep(0.02)  # sampling the sink's counter, not waiting for time
    wall = time.perf_counter() - start
    everything = sink.count() - before >= expected
    for proc in procs:
        _, err = proc.communicate()
        # 75: this burst ended while another worker still held leases; fine
        # once every message of the run reached the sink.
        if proc.returncode and not (proc.returncode == EX_TEMPFAIL and everything):
            raise SystemExit(f"a worker failed ({proc.returncode}): {err.decode()[-2000:]}")
    steady = ((high - low) / (marks[high] - marks[low])
              if expected and low in marks and high in marks and marks[high] > marks[low]
              else float("nan"))
    return wall, steady


EX_TEMPFAIL = 75
"""What `dispatch worker --burst` exits with when rows are left (here: leased
by the other workers of the run)."""

POSTGRES_ENVS = ("DISPATCH_BENCH_POSTGRES_URL", "DISPATCH_TEST_POSTGRES_URL")


def postgres_from_env() -> str | None:
    """The PostgreSQL to benchmark on, from the first variable that is set."""
    return next((os.environ[name] for name in POSTGRES_ENVS if os.environ.get(name)), None)


def run_scaleout(base: str, *, recipients: int = 2_000, connections: int = 4,
                 delay_ms: float = 10.0, batch_size: int = 50,
                 processes: Sequence[int] = (1, 2, 4)) -> None:
    """Print the scale-out figures: each worker-process count against the
    1-process run of this same call (the baseline), in a throw-away schema."""
    os.environ.setdefault("DISPATCH_SECRET_KEY", SECRET)  # the workers get SECRET explicitly

    from tests.pg_schema import scratch_schema
    from tests.smtp_sink import SinkProcess

    from dispatch.config import load_settings
    from dispatch.content import load_site
    from dispatch.outbox import edition_status, queue_edition
    from dispatch.render import render_article_edition
    from dispatch.store import open_store
    from dispatch.subscribers.csvfile import ImportRow, import_rows

    counts = list(processes)
    delay = delay_ms / 1000
    with tempfile.TemporaryDirectory() as name, scratch_schema(base, "bench") as url:
        root = make_site(Path(name), batch_size)
        settings = load_settings(root)
        article = next(a for a in load_site(settings).articles if a.is_published(NOW))
        store = open_store(url)
        import_rows(store, [ImportRow(i, f"reader{i:06d}@example.com", f"Reader {i}", "active",
                                      ()) for i in range(recipients)], "bench", NOW)
        sink = SinkProcess(delay_ms)
        try:
            idle, _ = run_workers(root, url, sink, 1, connections, 0)  # nothing queued
            print(f"PostgreSQL; {recipients:,} recipients per run; {connections} SMTP "
                  f"connection(s) per worker; {delay_ms:g} ms per SMTP reply; "
                  f"{os.cpu_count()} CPU(s)")
            print(f"start-up and exit of one idle `dispatch worker --burst`: {idle:.2f} s")
            baseline = None
            for workers in counts:
                edition = render_article_edition(settings, article, f"bench-{workers}p")
                queue_edition(store, edition, ["bench"], NOW)
                before = sink.count()
                seconds, steady = run_workers(root, url, sink, workers, connections,
                                              recipients)
                accepted = sink.count() - before
                status = edition_status(store, edition.edition_id)
                assert accepted == recipients == status.sent and status.reconciles, (
                    accepted, status)
                rate = recipients / seconds
                ceiling = workers * connections / (4 * delay) if delay else 0.0
                label = "" if baseline else ", the baseline"
                baseline = baseline or (rate, steady)
                versus = (f", {steady / ceiling:.0%} of the ceiling {ceiling:.0f}" if delay
                          else ", loopback: no round-trip ceiling")
                print(f"{workers} worker process(es){label}: wall clock {rate:6.1f} msg/s "
                      f"({seconds:4.1f} s, x{rate / baseline[0]:.2f}); steady {steady:6.1f} "
                      f"msg/s (x{steady / baseline[1]:.2f}{versus})")
        finally:
            sink.stop()
            store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default=postgres_from_env(),
                        help=f"PostgreSQL URL (default: ${' or $'.join(POSTGRES_ENVS)})")
    parser.add_argument("--recipients", type=int, default=2_000)
    parser.add_argument("--connections", type=int, default=4,
                        help="SMTP connections per worker process")
    parser.add_argument("--delay-ms", type=float, default=10.0)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--processes", default="1,2,4")
    args = parser.parse_args()
    if not args.postgres:
        raise SystemExit("give --postgres URL (or set DISPATCH_BENCH_POSTGRES_URL), e.g. "
                         "postgresql://postgres@127.0.0.1:5432/test")
    run_scaleout(args.postgres, recipients=args.recipients, connections=args.connections,
                 delay_ms=args.delay_ms, batch_size=args.batch_size,
                 processes=[int(p) for p in args.processes.split(",")])


if __name__ == "__main__":
    main()
