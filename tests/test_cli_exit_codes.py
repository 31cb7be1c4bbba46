"""A burst that could not do what it was asked exits 75 (EX_TEMPFAIL) and
says what is left and when it is retried: an unreachable SMTP server, and
rows still leased by a killed worker."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from dispatch.config import load_settings
from dispatch.outbox import claim
from dispatch.outbox.policy import RetryPolicy
from dispatch.store import open_store

ENV = {**os.environ, "COLUMNS": "200"}
for name in ("DISPATCH_SMTP_URL", "DISPATCH_DATABASE_URL"):
    ENV.pop(name, None)


def dispatch(root: Path, *args: str, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "dispatch", *args, "--root", str(root)],
                            capture_output=True, text=True, env=env or ENV, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


DIGEST = ("send", "--digest", "--audience", "weekly", "--since", "2026-10-01", "--deliver")


def test_unreachable_server_exits_75_saying_what_is_left(example_site: Path) -> None:
    assert dispatch(example_site, "run", "--once").returncode == 0
    down = {**ENV, "DISPATCH_SMTP_URL": f"smtp://127.0.0.1:{closed_port()}?tls=none"}
    sent = dispatch(example_site, *DIGEST, env=down)
    assert sent.returncode == 75, sent.stdout + sent.stderr
    assert "queued for 8 recipient(s)" in sent.stdout
    match = re.search(r"not done: (\d+) message\(s\) still queued; the next retry is due "
                      r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", sent.stderr)
    assert match, sent.stderr
    assert int(match.group(1)) == 8
    retry_at = datetime.fromisoformat(match.group(2)).replace(tzinfo=UTC)
    assert retry_at > datetime(2026, 1, 1, tzinfo=UTC)  # a real time, said in UTC

    again = dispatch(example_site, "worker", "--burst", env=down)
    assert again.returncode == 75
    assert "not done: 8 message(s) still queued" in again.stderr


def test_nothing_left_exits_0(example_site: Path) -> None:
    assert dispatch(example_site, "run", "--once").returncode == 0
    sent = dispatch(example_site, *DIGEST)
    assert sent.returncode == 0, sent.stderr
    assert "not done" not in sent.stderr
    idle = dispatch(example_site, "worker", "--burst")
    assert idle.returncode == 0 and "not done" not in idle.stderr


def test_burst_after_a_killed_worker_names_the_leases(example_site: Path) -> None:
    assert dispatch(example_site, "run", "--once").returncode == 0
    down = {**ENV, "DISPATCH_SMTP_URL": f"smtp://127.0.0.1:{closed_port()}?tls=none"}
    # Queue the digest without delivering, then lease three rows as a worker
    # that is then "killed" (it never settles them).
    queued = dispatch(example_site, *DIGEST[:-1], env=down)
    assert queued.returncode == 0, queued.stderr
    store = open_store(load_settings(example_site).database_url)
    try:
        lease = claim(store, "deadhost:4242", datetime.now(UTC), 3, RetryPolicy())
    finally:
        store.dispose()
    assert len(lease.rows) == 3
    burst = dispatch(example_site, "worker", "--burst")
    # Leases are said, not failed on: several bursts may drain one queue.
    assert burst.returncode == 0, burst.stdout + burst.stderr
    expected = (f"note: 3 message(s) leased by deadhost:4242 until "
                f"{lease.lease_until:%Y-%m-%d %H:%M:%S} UTC; if that worker was stopped or "
                "killed they are retried after then")
    assert expected in burst.stderr
    assert "sent 5" in burst.stdout  # the rest went out


def test_a_path_that_cannot_be_written_is_an_error_naming_it(example_site: Path) -> None:
    """`build --out` and `export -o` under a file (or without rights): exit 1
    with the path, not an OSError traceback."""
    from click.testing import CliRunner

    from dispatch.cli import main

    (example_site / "a-file").write_text("not a folder")
    for args in (["build", "--out", str(example_site / "a-file" / "www")],
                 ["subscribers", "export", "-o", str(example_site / "a-file" / "x.csv")]):
        result = CliRunner().invoke(main, [*args, "--root", str(example_site)])
        assert isinstance(result.exception, SystemExit), result.output
        assert result.exit_code == 1
        assert re.search(r"error: \S*a-file\S*: Not a directory", result.output), result.output
