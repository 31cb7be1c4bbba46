"""Benchmark: load N generated articles cold, then warm (unchanged files).

    .venv/bin/python bench/load_articles.py [--articles 10000]

The cold pass parses every file and fills the load cache in the store; the
warm pass only stats files and reads the cache. Both run in this process on
the same SQLite file, so the ratio is measured on one machine in one run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from dispatch.config import load_settings
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--warm-runs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_site(root, args.articles)
        settings = load_settings(root)
        store = open_store(settings.database_url)
        cache = StoreCache(store)

        started = time.perf_counter()
        cold = load_site(settings, cache)
        cold_s = time.perf_counter() - started
        assert len(cold.articles) == args.articles and not cold.errors, cold.errors[:3]

        warm_times = []
        for _ in range(args.warm_runs):
            started = time.perf_counter()
            warm = load_site(settings, cache)
            warm_times.append(time.perf_counter() - started)
            assert warm.from_cache == args.articles
        warm_s = statistics.median(warm_times)
        store.dispose()

    print(f"articles:              {args.articles:,}")
    print(f"cold load (baseline):  {cold_s:.2f} s  ({args.articles / cold_s:,.0f} articles/s)")
    print(f"warm pass (median of {args.warm_runs}): {warm_s:.3f} s")
    print(f"speed-up:              {cold_s / warm_s:.1f}x  (goal: warm < 1 s and >= 10x)")


if __name__ == "__main__":
    main()
