"""An invalid [sender] email is a dispatch.toml:LINE error in every command
that would send from it, on a site that is otherwise ready to send (lists
synced, articles recorded), and nothing is queued or leased."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ENV = {k: v for k, v in os.environ.items()
       if k not in ("DISPATCH_DATABASE_URL", "DISPATCH_SMTP_URL")}
GOOD = 'email = "journal@northfield-clinic.example"'
BAD = 'email = "journal-at-clinic"'


def dispatch(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dispatch", *args, "--root", str(root)],
                          capture_output=True, text=True, env=ENV, timeout=300)


@pytest.fixture(scope="module")
def ready(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import shutil

    repo = Path(__file__).resolve().parent.parent
    root = tmp_path_factory.mktemp("sender") / "site"
    root.mkdir()
    for name in ("content", "templates", "static"):
        if (repo / name).exists():
            shutil.copytree(repo / name, root / name)
    for name in ("dispatch.toml", "schedules.yaml", "subscribers.csv"):
        shutil.copy(repo / name, root / name)
    first = dispatch(root, "run", "--once")
    assert first.returncode == 0, first.stdout + first.stderr
    toml = root / "dispatch.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace(GOOD, BAD), encoding="utf-8")
    return root


@pytest.mark.parametrize("command", [
    ("check",), ("run", "--once"), ("worker", "--burst"), ("preview", "handwashing-and-colds"),
    ("send", "handwashing-and-colds", "--audience", "weekly", "--deliver"),
    ("send", "--digest", "--audience", "weekly", "--since", "2026-10-01", "--deliver"),
    ("social", "handwashing-and-colds", "--queue"), ("trigger", "weekly-digest"),
])
def test_every_sending_command_stops_at_the_line(ready: Path, command: tuple[str, ...]) -> None:
    line = (ready / "dispatch.toml").read_text(encoding="utf-8").splitlines().index(BAD) + 1
    result = dispatch(ready, *command)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert f"dispatch.toml:{line}: sender.email: 'journal-at-clinic' is not allowed" in out
    assert "Traceback" not in out and "internal error" not in out
    with sqlite3.connect(ready / ".dispatch" / "dispatch.db") as db:
        assert db.execute("select count(*) from outbox").fetchone()[0] == 0
        assert db.execute("select count(*) from editions").fetchone()[0] == 0
