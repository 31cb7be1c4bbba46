"""What one scheduler tick costs: the store round trips around the pure decisions.

    .venv/bin/python bench/schedule_tick.py [--schedules 40] [--articles 2000] [--ticks 200]

Prints the median cost of ``engine.tick`` on a real SQLite file (a tick runs
on every pass and at every firing) and, as the baseline measured in the same
run, the pure part alone: ``decide_timed`` / ``decide_published`` for the same
schedules and times with nothing read or written.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.schedulekit import article

from dispatch.schedule.actions import RecordingActions
from dispatch.schedule.decide import decide_published, decide_timed
from dispatch.schedule.engine import tick
from dispatch.schedule.spec import parse_schedules
from dispatch.store.articles import record_publications
from dispatch.store.engine import open_store


def schedules_text(count: int) -> str:
    lines = ["timezone: Europe/London", "schedules:"]
    for i in range(count):
        kind = i % 4
        if kind == 0:
            lines += [f"  - id: digest-{i}", "    kind: digest", f"    cron: '{i % 60} 8 * * mon'",
                      "    audience: [weekly]"]
        elif kind == 1:
            lines += [f"  - id: alert-{i}", "    kind: article", "    on_publish: true",
                      "    delay: 2h", "    audience: [all]"]
        elif kind == 2:
            lines += [f"  - id: social-{i}", "    kind: social", "    on_publish: true"]
        else:
            lines += [f"  - id: feeds-{i}", "    kind: feeds", f"    cron: '{i % 60} * * * *'"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--schedules", type=int, default=40)
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--ticks", type=int, default=200)
    args = parser.parse_args()

    parsed, problems = parse_schedules(schedules_text(args.schedules))
    assert not [p for p in problems if p.is_error], problems
    start = datetime(2026, 3, 2, tzinfo=UTC)
    articles = [article(f"a{i}", start - timedelta(hours=args.articles - i))
                for i in range(args.articles)]
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'bench.db'}")
        record_publications(store, articles, start)
        actions = RecordingActions()
        costs = []
        for n in range(args.ticks):
            now = start + timedelta(minutes=15 * n)
            t0 = time.perf_counter()
            tick(store, parsed, articles, now, actions)
            costs.append(time.perf_counter() - t0)
        store.dispose()

    pure = []
    pending = [(a, start) for a in articles[-20:]]
    for n in range(args.ticks):
        now = start + timedelta(minutes=15 * n)
        t0 = time.perf_counter()
        for s in parsed.schedules:
            if s.on_publish:
                decide_published(s, pending, now)
            else:
                decide_timed(s, now - timedelta(minutes=15), now)
        pure.append(time.perf_counter() - t0)

    print(f"{args.schedules} schedules, {args.articles} articles, {args.ticks} ticks "
          f"({len(actions.calls)} firings acted on)")
    print(f"tick on SQLite (median):           {statistics.median(costs) * 1000:8.2f} ms")
    print(f"baseline, pure decisions (median): {statistics.median(pure) * 1000:8.2f} ms")


if __name__ == "__main__":
    main()
