"""Feeds for a 10,000-article site in 50 categories: full build vs one-article rebuild.

Run:  .venv/bin/python bench/feeds_build.py [--articles N] [--categories N] [--repeat N]

The baseline is the full build (every feed rendered and written into an empty
folder), measured in the same run; the figure is a rebuild after one article
in the newest page of one category changed, done as the pipeline does it:
``update_feeds`` told which article changed since the last build (the pipeline
asks its store; here the bench knows) and given the slug index the loader
builds anyway. Goal: the rebuild at least 20x faster than the full build.
For comparison it also times the same edit through ``build_feeds``, which
plans every feed and checks each against the manifest.

Articles are built directly as ``Article`` values (the bench measures the
feeds stage, not Markdown loading) with a realistic ~4 KB body each.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from dispatch.config import Settings, SiteSettings
from dispatch.feeds import build_feeds, update_feeds
from dispatch.models import Article

LONDON = ZoneInfo("Europe/London")
PARAGRAPH = (
    "<p>Regular sleep of under six hours is linked to higher blood pressure in large cohort "
    "studies; see <a href=\"https://bench.example/sources/{n}/\">the sources</a> &amp; notes "
    "on what helps — a fixed wake-up time, dim screens, less caffeine after midday.</p>\n"
)


def make_articles(count: int, categories: int) -> list[Article]:
    # Site-local dates, as the loader produces them: a naive frontmatter time
    # given the site's ZoneInfo (not UTC; fold always 0).
    start = datetime(2020, 1, 1, 7, 0)
    articles = []
    for n in range(count):
        slug = f"article-{n:05d}"
        body = "".join(PARAGRAPH.format(n=n) for _ in range(12))
        articles.append(Article(
            slug=slug, source=f"content/{slug}.md", title=f"Article {n} & friends <{n % 7}>",
            date=(start + timedelta(hours=5 * n)).replace(tzinfo=LONDON),
            summary=f"Summary of article {n}.",
            body_markdown="", body_html=body, sources_html="", sources=(),
            url=f"https://bench.example/{slug}/",
            content_hash=hashlib.sha256(body.encode()).hexdigest(), reading_minutes=2,
            excerpt="", category=f"Category {n % categories}", tags=("bench", f"t{n % 13}"),
            author="Bench Writer", image=f"https://bench.example/img/{n}.jpg",
        ))
    return articles


def edit(article: Article, round_: int) -> Article:
    """A writer's correction: new title and body, so a new source digest."""
    return dataclasses.replace(
        article, title=f"{article.title} (corrected {round_})",
        body_html=article.body_html + f"<p>Correction {round_}.</p>",
        content_hash=hashlib.sha256(f"{article.content_hash}{round_}".encode()).hexdigest())


def reported(slug: str) -> Callable[[datetime], set[str]]:
    """What the pipeline's store answers: the articles changed since a time."""
    return lambda _since: {slug}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--categories", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5, help="full builds")
    parser.add_argument("--edits", type=int, default=5, help="one-article rebuilds per round")
    args = parser.parse_args()

    settings = Settings(root=Path("."), site=SiteSettings(
        title="Bench", url="https://bench.example", timezone="Europe/London"))
    articles = make_articles(args.articles, args.categories)
    # In UTC, as the CLI's clock gives it.
    now = (articles[-1].date + timedelta(days=1)).astimezone(UTC)
    full_times: list[float] = []
    one_times: list[float] = []
    planned_times: list[float] = []
    full_cpu: list[float] = []
    one_cpu: list[float] = []
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            t0, c0 = time.perf_counter(), time.process_time()
            full = build_feeds(settings, articles, now, out)
            full_times.append(time.perf_counter() - t0)
            full_cpu.append(time.process_time() - c0)
            print(f"round {round_ + 1}: full build {full_times[-1] * 1000:7.1f} ms "
                  f"({full.feeds} feeds rendered, {len(full.written)} files written)")
            current = list(articles)
            by_slug = {a.slug: a for a in current}
            for n in range(args.edits):
                # A recent article: it sits in the site-wide feed and its category's.
                index = len(current) - 1 - n
                current[index] = by_slug[current[index].slug] = edit(current[index], round_)
                since = reported(current[index].slug)
                t0, c0 = time.perf_counter(), time.process_time()
                one = update_feeds(settings, current, by_slug, since, now, out)
                one_times.append(time.perf_counter() - t0)
                one_cpu.append(time.process_time() - c0)
                print(f"  one-article rebuild {one_times[-1] * 1000:6.1f} ms "
                      f"({one.rendered} feeds rendered, {len(one.written)} files written, "
                      f"{one.unchanged} unchanged)")
            for n in range(args.edits):
                # The same edits again, through the build that plans every feed.
                index = len(current) - 1 - n
                current[index] = edit(current[index], round_ + 100)
                t0 = time.perf_counter()
                again = build_feeds(settings, current, now, out)
                planned_times.append(time.perf_counter() - t0)
                print(f"  same edit via build_feeds {planned_times[-1] * 1000:6.1f} ms "
                      f"({again.rendered} feeds rendered)")
    full_s = statistics.median(full_times)
    one_s = statistics.median(one_times)
    ratio = full_s / one_s
    print(f"\n{args.articles:,} articles, {args.categories} categories; medians of "
          f"{len(full_times)} full builds and {len(one_times)} rebuilds:")
    print(f"  baseline  full build:          {full_s * 1000:8.1f} ms")
    print(f"  figure    one-article rebuild: {one_s * 1000:8.1f} ms")
    print(f"  speed-up {ratio:.1f}x (goal >= 20x): {'met' if ratio >= 20 else 'NOT met'}")
    planned_s = statistics.median(planned_times)
    print(f"  (the same edit through build_feeds, planning every feed: "
          f"{planned_s * 1000:.1f} ms, {full_s / planned_s:.1f}x)")
    # CPU time leaves out waiting for the disk (fsync) and for other processes
    # on a shared machine; it is printed to tell those apart, not as the figure.
    cpu_full, cpu_one = statistics.median(full_cpu), statistics.median(one_cpu)
    print(f"  (CPU time only: full {cpu_full * 1000:.1f} ms, rebuild {cpu_one * 1000:.1f} ms, "
          f"{cpu_full / cpu_one:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
