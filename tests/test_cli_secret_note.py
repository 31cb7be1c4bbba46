"""The DISPATCH_SECRET_KEY reminder is said once, where it matters: by the
pass that creates the development key, by `check` and by `serve`; every
other command is quiet about it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ENV = {k: v for k, v in os.environ.items()
       if k not in ("DISPATCH_SECRET_KEY", "DISPATCH_DATABASE_URL", "DISPATCH_SMTP_URL")}
ENV["COLUMNS"] = "200"
REMINDER = "DISPATCH_SECRET_KEY is not set"


def dispatch(root: Path, *args: str, env: dict[str, str] = ENV) -> str:
    result = subprocess.run([sys.executable, "-m", "dispatch", *args, "--root", str(root)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout + result.stderr


def test_said_once_by_the_pass_that_makes_the_key_then_only_by_check(
        example_site: Path) -> None:
    first = dispatch(example_site, "run", "--once")
    assert first.count(REMINDER) == 1, first
    # In the CLI's own voice, as `check` says it, not a logging record's.
    assert f"note: {REMINDER}" in first and "WARNING" not in first, first
    assert (example_site / ".dispatch" / "secret").exists()
    for command in (("run", "--once"), ("articles",), ("build",),
                    ("send", "--digest", "--audience", "weekly", "--since", "2026-10-01",
                     "--deliver"), ("worker", "--burst"), ("queue",)):
        assert REMINDER not in dispatch(example_site, *command), command
    check = dispatch(example_site, "check")
    assert check.count(REMINDER) == 1
    assert "note: DISPATCH_SECRET_KEY is not set: unsubscribe links are signed with the " \
           "development key in" in check
    assert "0 error(s), 0 warning(s)" in check  # a reminder, not a warning to fix


def test_check_is_quiet_when_the_key_is_set(example_site: Path) -> None:
    assert REMINDER not in dispatch(example_site, "check",
                                    env={**ENV, "DISPATCH_SECRET_KEY": "x" * 40})


def test_serve_says_it_at_start(example_site: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "dispatch", "serve", "--port", "0",
                             "--root", str(example_site)], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 120
        line = ""
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if REMINDER in line or not line:
                break
        assert REMINDER in line and line.startswith("note: ")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
