"""Feeds for a 10,000-article site in 50 categories: full build vs one-article rebuild.

Run:  .venv/bin/python bench/feeds_build.py [--articles N] [--categories N] [--repeat N]

The baseline is the full build (every feed rendered and written into an empty
folder), measured in the same run; the figure is a rebuild after one article
in the newest page of one category changed. Goal: the rebuild at least 20x
faster than the full build. Articles are built directly as ``Article`` values
(the bench measures the feeds stage, not Markdown loading) with a realistic
~4 KB body each.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dispatch.config import SiteSettings, Settings
from dispatch.feeds import build_feeds
from dispatch.models import Article

PARAGRAPH = (
    "<p>Regular sleep of under six hours is linked to higher blood pressure in large cohort "
    "studies; see <a href=\"https://bench.example/sources/{n}/\">the sources</a> &amp; notes "
    "on what helps — a fixed wake-up time, dim screens, less caffeine after midday.</p>\n"
)


def make_articles(count: int, categories: int) -> list[Article]:
    start = datetime(2020, 1, 1, 7, 0, tzinfo=UTC)
    articles = []
    for n in range(count):
        slug = f"article-{n:05d}"
        body = "".join(PARAGRAPH.format(n=n) for _ in range(12))
        articles.append(Article(
            slug=slug, source=f"content/{slug}.md", title=f"Article {n} & friends <{n % 7}>",
            date=start + timedelta(hours=5 * n), summary=f"Summary of article {n}.",
            body_markdown="", body_html=body, sources_html="", sources=(),
            url=f"https://bench.example/{slug}/",
            content_hash=hashlib.sha256(body.encode()).hexdigest(), reading_minutes=2,
            excerpt="", category=f"Category {n % categories}", tags=("bench", f"t{n % 13}"),
            author="Bench Writer", image=f"https://bench.example/img/{n}.jpg",
        ))
    return articles


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--categories", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    settings = Settings(root=Path("."), site=SiteSettings(title="Bench", url="https://bench.example"))
    articles = make_articles(args.articles, args.categories)
    now = articles[-1].date + timedelta(days=1)
    full_times, one_times, ratios = [], [], []
    for round_ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            t0 = time.perf_counter()
            full = build_feeds(settings, articles, now, out)
            full_s = time.perf_counter() - t0

            # Edit one recent article (it sits in the site feed and its category's).
            index = len(articles) - 1 - round_
            edited = list(articles)
            old = edited[index]
            edited[index] = dataclasses.replace(
                old, title=old.title + " (corrected)", body_html=old.body_html + "<p>Fix.</p>",
                content_hash=hashlib.sha256(old.content_hash.encode()).hexdigest())
            t0 = time.perf_counter()
            one = build_feeds(settings, edited, now, out)
            one_s = time.perf_counter() - t0
        full_times.append(full_s)
        one_times.append(one_s)
        ratios.append(full_s / one_s)
        print(f"round {round_ + 1}: full build {full_s * 1000:8.1f} ms "
              f"({full.feeds} feeds, {len(full.written)} files written) | one-article rebuild "
              f"{one_s * 1000:7.1f} ms ({one.rendered} feeds rendered, "
              f"{len(one.written)} files written, {one.unchanged} unchanged) | {full_s / one_s:5.1f}x")
    ratio = statistics.median(ratios)
    print(f"\n{args.articles:,} articles, {args.categories} categories, median of {args.repeat}:")
    print(f"  baseline  full build:          {statistics.median(full_times) * 1000:8.1f} ms")
    print(f"  figure    one-article rebuild: {statistics.median(one_times) * 1000:8.1f} ms")
    print(f"  speed-up {ratio:.1f}x (goal >= 20x): {'met' if ratio >= 20 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
