"""Scale: time and peak memory of whole commands as the data grows.

Run:  .venv/bin/python bench/scale.py                        # subscribers, 10k 100k 1M, SQLite
      .venv/bin/python bench/scale.py --sizes 10000,100000 --baseline e4ee3e1
      .venv/bin/python bench/scale.py --postgres postgresql://postgres@127.0.0.1:5432/test
      .venv/bin/python bench/scale.py --suite articles --baseline main  # 1k 10k 50k articles
      .venv/bin/python bench/scale.py --sizes 1000000 --steps "subscribers import" --repeat 3

Every command runs as its own ``dispatch`` process on a site built for the
size; the figure is its wall time and its peak resident memory (``ru_maxrss``
from ``os.wait4`` on that one child, so nothing of this script is counted).
Setting a size up (writing the CSV, the site) is not timed. After the sizes,
each row prints its growth exponent: the slope of log(figure) against
log(size), for CPU time and for peak memory, so 1.0 is linear and 0.0 is
flat. CPU time (user + system of the child) is printed beside wall time
because on a shared machine a command may get only part of a core.

``--baseline REV`` runs the same commands, in the same run, on the code of
git revision REV (checked out into a temporary worktree) at the sizes in
``--baseline-sizes`` (default: the suite's own, 10k and 100k subscribers or
1k and 10k articles: the old code needs minutes and gigabytes at the top
size). A command the old code did not have is left out.

Suites are rows of a table (:data:`SUITES`): a name, the sizes, a ``setup``
that builds a workspace for one size, and the ordered steps, each a command
line (and optionally something to do, untimed, before it): subscribers
(import, list, export, send, passes over a synced list) and articles (a cold
pass, a warm pass and a build over generated Markdown files).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.pg_schema, shared with the tests


@dataclass
class Workspace:
    """One size of one suite: a site folder and the environment its commands get."""

    root: Path
    size: int
    env: dict[str, str]
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    name: str
    argv: Callable[[Workspace], list[str]]
    before: Callable[[Workspace], None] | None = None
    """Untimed preparation (e.g. edit the CSV so the next pass sees a change)."""
    new_only: bool = False
    """Only meaningful on the new code (the baseline has no such behaviour)."""


@dataclass(frozen=True)
class Suite:
    name: str
    sizes: tuple[int, ...]
    setup: Callable[[Path, int], Workspace]
    steps: tuple[Step, ...]
    baseline_sizes: tuple[int, ...] = (10_000, 100_000)
    """Sizes for ``--baseline`` unless given: the old code needs minutes and
    gigabytes at the largest."""


@dataclass(frozen=True)
class Measure:
    seconds: float
    cpu: float
    """User + system CPU seconds of the child: steadier than wall time on a
    shared machine, where a command may get a fraction of a core."""
    peak_mb: float
    ok: bool
    tail: str


def run_child(argv: Sequence[str], env: dict[str, str], cwd: Path) -> Measure:
    """Run one command; its own peak RSS comes from wait4 on exactly that child."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(list(argv), env=env, cwd=cwd, stdout=out, stderr=out)
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        tail = out.read().decode("utf-8", "replace").strip().splitlines()[-2:]
    # Linux reports ru_maxrss in kilobytes.
    return Measure(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
                   proc.returncode == 0, " | ".join(tail))


def dispatch_argv(*args: str) -> list[str]:
    return [sys.executable, "-c", "from dispatch.cli import main; main()", *args]


# --- the subscribers suite ---------------------------------------------------

def _write_csv(path: Path, n: int, *, changed_every: int = 0) -> None:
    """n people over 1,000 domains, with a name and one custom field.
    ``changed_every`` renames every k-th person (a file that changed a little)."""
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("email,name,city\n")
        for i in range(n):
            name = f"Reader {i}" if not changed_every or i % changed_every else f"Renamed {i}"
            f.write(f"reader{i:07d}@mail{i % 1000}.example.com,{name},City {i % 50}\n")


def _site_toml(list_file: str) -> str:
    text = (REPO / "dispatch.toml").read_text(encoding="utf-8")
    text = re.sub(r"\[subscribers\.lists\]\n(?:[^\[\n][^\n]*\n)*",
                  f'[subscribers.lists]\nbig = "{list_file}"\n', text)
    return text


def subscribers_setup(root: Path, n: int) -> Workspace:
    root.mkdir(parents=True)
    for name in ("content", "templates", "static"):
        if (REPO / name).exists():
            shutil.copytree(REPO / name, root / name)
    # No schedules: a pass must not queue a million emails to the capture folder.
    (root / "dispatch.toml").write_text(_site_toml("big.csv"), encoding="utf-8")
    _write_csv(root / "big.csv", n)
    return Workspace(root, n, {})


def _touch_one_percent(ws: Workspace) -> None:
    _write_csv(ws.root / "big.csv", ws.size, changed_every=100)


SUBSCRIBERS = Suite(
    "subscribers",
    (10_000, 100_000, 1_000_000),
    subscribers_setup,
    (
        Step("subscribers import",
             lambda ws: dispatch_argv("subscribers", "import", "big.csv", "--list", "big")),
        Step("subscribers import (again)",
             lambda ws: dispatch_argv("subscribers", "import", "big.csv", "--list", "big")),
        Step("subscribers list --list big",
             lambda ws: dispatch_argv("subscribers", "list", "--list", "big")),
        Step("subscribers export",
             lambda ws: dispatch_argv("subscribers", "export", "--list", "big", "-o",
                                      "out.csv")),
        Step("send --digest --dry-run",
             lambda ws: dispatch_argv("send", "--digest", "--since", "2000-01-01",
                                      "--audience", "big", "--dry-run")),
        Step("run --once (CSV first seen)", lambda ws: dispatch_argv("run", "--once")),
        Step("run --once (CSV unchanged)", lambda ws: dispatch_argv("run", "--once")),
        Step("run --once (1% of CSV changed)", lambda ws: dispatch_argv("run", "--once"),
             before=_touch_one_percent),
    ),
)


# --- the articles suite ------------------------------------------------------

def articles_setup(root: Path, n: int) -> Workspace:
    """n generated articles (bench/load_articles.py), 4-10 paragraphs each."""
    from bench.load_articles import write_site

    root.mkdir(parents=True)
    write_site(root, n)
    return Workspace(root, n, {})


ARTICLES = Suite(
    "articles",
    (1_000, 10_000, 50_000),
    articles_setup,
    (
        # The first pass parses every file and fills the load cache.
        Step("run --once (cold cache)", lambda ws: dispatch_argv("run", "--once")),
        # Nothing changed: stat, read the cache, render only what changed.
        Step("run --once (warm)", lambda ws: dispatch_argv("run", "--once")),
        # Every feed written again from the cache (20 entries each).
        Step("build (warm cache)", lambda ws: dispatch_argv("build", "--out", "rebuilt")),
    ),
    baseline_sizes=(1_000, 10_000),
)

SUITES: dict[str, Suite] = {suite.name: suite for suite in (SUBSCRIBERS, ARTICLES)}


# --- running -----------------------------------------------------------------

@contextmanager
def code_at(rev: str | None) -> Iterator[tuple[str, Path]]:
    """(label, src folder) of the working tree, or of ``rev`` in a temporary worktree."""
    if rev is None:
        yield "now", REPO / "src"
        return
    where = Path(tempfile.mkdtemp(prefix="scale-base-"))
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q",
                    str(where / "tree"), rev], check=True)
    try:
        yield f"before ({rev[:10]})", where / "tree" / "src"
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                        str(where / "tree")], check=False)
        shutil.rmtree(where, ignore_errors=True)


@contextmanager
def database(postgres: str | None, root: Path) -> Iterator[str]:
    if postgres is None:
        yield f"sqlite:///{root / 'state.db'}"
        return
    from tests.pg_schema import scratch_schema

    with scratch_schema(postgres, "scale") as url:
        yield url


def run_suite(suite: Suite, sizes: Sequence[int], src: Path, postgres: str | None,
              skip_new_only: bool, steps: Sequence[str] = ()) -> dict[str, dict[int, Measure]]:
    """Every step of ``suite`` at each size, or only those whose names start
    with one of ``steps`` (a step's preparation still runs, untimed)."""
    results: dict[str, dict[int, Measure]] = {}
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix=f"scale-{n}-") as tmp, \
                database(postgres, Path(tmp)) as url:
            ws = suite.setup(Path(tmp) / "site", n)
            env = {**os.environ, "PYTHONPATH": str(src), "DISPATCH_DATABASE_URL": url,
                   "DISPATCH_SECRET_KEY": "b" * 64, **ws.env}
            for step in suite.steps:
                if step.new_only and skip_new_only:
                    continue
                if step.before is not None:
                    step.before(ws)
                if steps and not step.name.startswith(tuple(steps)):
                    continue
                m = run_child(step.argv(ws), env, ws.root)
                results.setdefault(step.name, {})[n] = m
                flag = "" if m.ok else f"  FAILED: {m.tail}"
                print(f"    {n:>9,}  {step.name:<34} {m.seconds:8.2f} s wall "
                      f"{m.cpu:8.2f} s CPU {m.peak_mb:8.1f} MB "
                      f"{n / m.seconds:>9,.0f} rows/s{flag}", flush=True)
    return results


def exponent(points: dict[int, float]) -> float | None:
    """Least-squares slope of log(value) against log(size)."""
    xs = [math.log(n) for n, v in points.items() if v > 0]
    ys = [math.log(v) for v in points.values() if v > 0]
    if len(xs) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else None


def _size(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else (
        f"{n // 1000}k" if n % 1000 == 0 else str(n))


def print_table(title: str, results: dict[str, dict[int, Measure]], sizes: Sequence[int]
                ) -> None:
    print(f"\n{title}")
    head = "".join(f"{_size(n):>27}" for n in sizes)
    print(f"  {'command':<34}{head}   growth (CPU, RSS)")
    print(f"  {'':<34}" + "".join(f"{'wall     CPU    peak':>27}" for _ in sizes))
    for name, by_size in results.items():
        cells = ""
        for n in sizes:
            m = by_size.get(n)
            cells += (f"{m.seconds:9.2f}s{m.cpu:7.2f}s{m.peak_mb:6.0f}MB{'!' if not m.ok else ' '}"
                      if m else f"{'—':>27}")
        et = exponent({n: m.cpu for n, m in by_size.items() if m.ok})
        er = exponent({n: m.peak_mb for n, m in by_size.items() if m.ok})
        growth = ("" if et is None or er is None else f"   n^{et:.2f}, n^{er:.2f}")
        print(f"  {name:<34}{cells}{growth}")
    print("  (! = the command failed; its figure is not used for growth)")


def machine_reference() -> str:
    """How busy the machine is, in the same run: a child Python's start-up and
    a fixed CPU loop, to read the figures against (a shared 2-core machine
    can be several times slower than an idle one)."""
    env = dict(os.environ)
    bare = run_child([sys.executable, "-c", "pass"], env, REPO)
    loop = run_child([sys.executable, "-c", "sum(range(10_000_000))"], env, REPO)
    load = os.getloadavg()[0]
    return (f"machine: load average {load:.1f}; `python -c pass` {bare.seconds:.2f} s; "
            f"a 10M-step loop {loop.seconds - bare.seconds:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", choices=sorted(SUITES), action="append")
    parser.add_argument("--sizes", help="comma-separated sizes (default: the suite's own)")
    parser.add_argument("--baseline", metavar="REV",
                        help="also run the code of this git revision, same run")
    parser.add_argument("--baseline-sizes",
                        help="comma-separated sizes for the baseline (default: the suite's own)")
    parser.add_argument("--postgres", metavar="URL",
                        default=os.environ.get("DISPATCH_BENCH_POSTGRES_URL"),
                        help="run on PostgreSQL (a throw-away schema per size)")
    parser.add_argument("--steps", action="append", default=[], metavar="NAME",
                        help="only the steps whose names start with NAME (repeatable), "
                             "e.g. 'subscribers import'")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run everything N times, alternating with the baseline; "
                             "each cell shows the best wall time")
    args = parser.parse_args()
    steps: list[str] = args.steps
    db = "PostgreSQL" if args.postgres else "SQLite"
    print(machine_reference(), flush=True)
    for name in args.suite or list(SUITES):
        suite = SUITES[name]
        if steps and not any(step.name.startswith(tuple(steps)) for step in suite.steps):
            continue
        sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else list(suite.sizes)
        with ExitStack() as stack:
            runs = [(stack.enter_context(code_at(None)), sizes, False)]
            if args.baseline:
                base_sizes = ([int(s) for s in args.baseline_sizes.split(",")]
                              if args.baseline_sizes else list(suite.baseline_sizes))
                runs.append((stack.enter_context(code_at(args.baseline)), base_sizes, True))
            # Runs alternate (now, baseline, now, baseline, …) so that both
            # codes see the same load; each cell keeps its best wall time.
            tables: list[tuple[str, dict[str, dict[int, Measure]], list[int]]] = [
                (f"{suite.name} on {db} — code {label}", {}, run_sizes)
                for (label, _src), run_sizes, _is_base in runs]
            for rep in range(args.repeat):
                for ((label, src), run_sizes, is_base), (_t, best, _s) in zip(
                        runs, tables, strict=True):
                    print(f"{suite.name} on {db}, code {label}"
                          f"{f', run {rep + 1}/{args.repeat}' if args.repeat > 1 else ''}:",
                          flush=True)
                    got = run_suite(suite, run_sizes, src, args.postgres, is_base, steps)
                    for step_name, by_size in got.items():
                        cells = best.setdefault(step_name, {})
                        for n, m in by_size.items():
                            if n not in cells or (m.ok, -m.seconds) > (cells[n].ok,
                                                                        -cells[n].seconds):
                                cells[n] = m
            for title, results, run_sizes in tables:
                print_table(title, results, run_sizes)
    print(machine_reference())


if __name__ == "__main__":
    main()
