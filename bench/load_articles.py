"""Benchmark: load N generated articles cold, then warm (unchanged files).

    .venv/bin/python bench/load_articles.py [--articles 10000]

The cold pass parses every file and fills the load cache in the store: once
in this one process (the baseline) and once in a process pool with a worker
per core (what ``dispatch`` does from 200 files to parse). The warm pass only
stats files and reads the cache. All run in one run on one machine; the CPU
figure counts this process and its workers, so it is fair on a busy machine
where the wall clock is not.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path

from dispatch.config import load_settings
from dispatch.content import loader
from dispatch.content.loader import load_site
from dispatch.store import open_store
from dispatch.store.articles import StoreCache

CATEGORIES = ["Heart health", "Nutrition", "Sleep", "Infections", "Vaccines", "Mental health"]
PARAGRAPH = (
    "Regular movement after meals helps the body handle blood sugar, and the effect "
    "builds over weeks. Most of the studies were small, so the size of the benefit is "
    "uncertain, but the direction is consistent across them.[^1]"
)


def write_site(root: Path, count: int) -> None:
    (root / "dispatch.toml").write_text(
        '[site]\ntitle = "Bench"\nurl = "https://bench.example"\ntimezone = "Europe/London"\n'
    )
    rng = random.Random(7)
    for index in range(count):
        folder = root / "content" / f"{index // 500:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        body = "\n\n".join(PARAGRAPH for _ in range(rng.randint(4, 10)))
        (folder / f"article-{index:05d}.md").write_text(
            f"---\ntitle: Article {index}\ndate: 2025-{1 + index % 12:02d}-{1 + index % 28:02d}\n"
            f"category: {CATEGORIES[index % len(CATEGORIES)]}\ntags: [bench, t{index % 40}]\n"
            f"summary: A generated article for the load benchmark.\n---\n"
            f"{body}\n\n## What to do\n\n- Walk\n- Sleep\n\n## Key takeaway\n\n"
            f"Move a little after meals. It helps.\n\n## Sources\n\n[^1]: A trial, 2024.\n",
            encoding="utf-8",
        )


def _cold(root: Path, count: int, db: str, pool: bool) -> tuple[float, float]:
    """Wall and CPU seconds (this process and its workers) of one cold load."""
    settings = load_settings(root)
    store = open_store(f"sqlite:///{root / db}")
    saved = loader.POOL_FROM
    loader.POOL_FROM = saved if pool else count + 1
    try:
        cpu = _cpu()
        started = time.perf_counter()
        result = load_site(settings, StoreCache(store))
        wall = time.perf_counter() - started
        cpu = _cpu() - cpu
    finally:
        loader.POOL_FROM = saved
        store.dispose()
    assert len(result.articles) == count and not result.errors, result.errors[:3]
    return wall, cpu


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + workers.ru_utime + workers.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--warm-runs", type=int, default=3)
    args = parser.parse_args()
    n = args.articles

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_site(root, n)
        # Baseline first: one process parses every file.
        serial_s, serial_cpu = _cold(root, n, "serial.db", pool=False)
        cold_s, cold_cpu = _cold(root, n, "state.db", pool=True)

        settings = load_settings(root)
        store = open_store(f"sqlite:///{root / 'state.db'}")
        cache = StoreCache(store)
        warm_times = []
        for _ in range(args.warm_runs):
            started = time.perf_counter()
            warm = load_site(settings, cache)
            warm_times.append(time.perf_counter() - started)
            assert warm.from_cache == n
        warm_s = statistics.median(warm_times)
        store.dispose()

    cores = len(os.sched_getaffinity(0))
    print(f"articles:              {n:,}  ({cores} cores; load average now "
          f"{os.getloadavg()[0]:.1f})")
    print(f"cold load, one process (baseline): {serial_s:.2f} s wall, "
          f"{serial_cpu / n * 1000:.2f} ms CPU per article, "
          f"{serial_s / n * 1000:.2f} ms wall per article")
    print(f"cold load, process pool:           {cold_s:.2f} s wall, "
          f"{cold_cpu / n * 1000:.2f} ms CPU per article, "
          f"{cold_s / n * 1000:.2f} ms wall per article  -> {serial_s / cold_s:.2f}x "
          "(goal: <= 1 ms wall per article)")
    print(f"warm pass (median of {args.warm_runs}): {warm_s:.3f} s")
    print(f"speed-up:              {cold_s / warm_s:.1f}x over the pooled cold load "
          "(goal: warm < 1 s and >= 10x)")


if __name__ == "__main__":
    main()
