"""Start-up cost of each command: import time, next to a bare interpreter.

    .venv/bin/python bench/startup.py [--runs 5] [--top 8]

Runs ``python -X importtime -m dispatch COMMAND`` on a private copy of the
example site for ``--help``, ``check`` and ``articles`` (and any others named
with ``--command``), and ``python -X importtime -c pass`` in the same run as
the baseline. The figure is the sum of every module's own import time (what
``-X importtime`` reports), the best of ``--runs`` runs so that a busy
machine's noise shows as little as possible. ``--top`` lists the heaviest
top-level imports of each command, to see what to defer next.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMMANDS = (("--help",), ("check",), ("articles",))


def import_lines(args: list[str], cwd: Path) -> list[tuple[int, int, str]]:
    """(self µs, cumulative µs, module) for every import the process made."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    # Measured as a user runs it, with bytecode cached by the warm-up: with
    # PYTHONDONTWRITEBYTECODE set, every run would compile every module again.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    result = subprocess.run([sys.executable, "-X", "importtime", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=300)
    found = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line[len("import time:"):].split("|", 2)
        found.append((int(own), int(cumulative), name.rstrip()))
    if result.returncode not in (0, 1):  # check exits 1 on errors; both are fine here
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return found


def total_ms(lines: list[tuple[int, int, str]]) -> float:
    return sum(own for own, _cum, _name in lines) / 1000


def heaviest(lines: list[tuple[int, int, str]], n: int) -> list[tuple[float, str]]:
    top = [(cum / 1000, name.strip()) for _own, cum, name in lines
           if not name.startswith("  ")]  # top-level imports only
    return sorted(top, reverse=True)[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--top", type=int, default=0)
    parser.add_argument("--command", action="append", default=[],
                        help="another command to measure, e.g. 'run --once' (repeatable)")
    args = parser.parse_args()
    commands = [*COMMANDS, *(tuple(c.split()) for c in args.command)]
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        site.mkdir()
        for name in ("content", "templates", "static"):
            if (REPO / name).exists():
                shutil.copytree(REPO / name, site / name)
        for name in ("dispatch.toml", "schedules.yaml", "subscribers.csv"):
            shutil.copy(REPO / name, site / name)
        # One warm-up each: the first run also compiles bytecode.
        import_lines(["-c", "pass"], site)
        for command in commands:
            import_lines(["-m", "dispatch", *command], site)
        rows: list[tuple[str, float, list[tuple[int, int, str]]]] = []
        baseline = min(total_ms(import_lines(["-c", "pass"], site)) for _ in range(args.runs))
        for command in commands:
            best: list[tuple[int, int, str]] = []
            best_ms = float("inf")
            for _ in range(args.runs):
                lines = import_lines(["-m", "dispatch", *command], site)
                if total_ms(lines) < best_ms:
                    best, best_ms = lines, total_ms(lines)
            rows.append((" ".join(command), best_ms, best))
    print(f"import time, best of {args.runs} (python -X importtime), "
          f"Python {sys.version.split()[0]}")
    print(f"{'command':<22}{'import ms':>10}{'vs bare':>10}")
    print(f"{'python -c pass':<22}{baseline:>10.1f}{'1.0x':>10}")
    for name, ms, lines in rows:
        print(f"{'dispatch ' + name:<22}{ms:>10.1f}{ms / baseline:>9.1f}x")
        for cum, module in heaviest(lines, args.top):
            print(f"{'':<6}{cum:>8.1f} ms  {module}")


if __name__ == "__main__":
    main()
