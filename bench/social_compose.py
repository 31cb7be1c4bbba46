"""Cost and correctness of composing social posts.

Figure: posts composed per second by dispatch (sentence selection, atom-aware
cut, per-network re-measure) over a fixed set of random Unicode takeaways.
Baseline, same run and same texts: the common feed-to-social approach
(``text[:limit - 24] + " " + url``: ``len()`` for the text, every link taken
as 23), with how many of its posts break the network's real rule or split a
grapheme cluster.

Run: .venv/bin/python bench/social_compose.py [--texts N]
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime

from dispatch.models import Article, Takeaway
from dispatch.social.compose import compose
from dispatch.social.config import NETWORKS, NetworkConfig
from dispatch.social.count import graphemes
from dispatch.social.networks import network

PIECES = ["Sleep matters.", "Keep a fixed wake-up time", "👨‍👩‍👧‍👦", "👍🏽", "e\u0301",
          "日本語のテキスト。", "مرحبا بالعالم", "—", "…", "example.org", "#sleep",
          "https://example.org/guide", "Ünïcödé", "word"]
UTM = "utm_source={network}&utm_medium=social&utm_campaign={slug}"


def texts(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(PIECES) for _ in range(rng.randint(5, 120)))
            for _ in range(count)]


def article(text: str) -> Article:
    return Article(slug="sleep-and-blood-pressure", source="content/x.md", title="T",
                   date=datetime(2026, 1, 1, tzinfo=UTC), summary="S", body_markdown="",
                   body_html="", sources_html="", sources=(),
                   url="https://journal.example.org/sleep-and-blood-pressure/",
                   content_hash="h", reading_minutes=1, excerpt="", tags=("sleep", "heart health"),
                   takeaway=Takeaway("", text))


def naive(text: str, url: str, limit: int) -> str:
    return text[: max(0, limit - 24)] + " " + url


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=600)
    args = parser.parse_args()
    corpus = [article(t) for t in texts(args.texts)]
    configs = [NetworkConfig(n, n, "capture", NETWORKS[n], UTM, 2, "en")  # type: ignore[arg-type]
               for n in ("x", "mastodon", "bluesky")]

    started = time.perf_counter()
    ours = [compose(a, c) for a in corpus for c in configs]
    elapsed = time.perf_counter() - started
    over = sum(not network(p.kind).fits(p.text, p.limit) for p in ours)

    started = time.perf_counter()
    base = [(naive(a.takeaway.text, p.url, c.limit), c)  # type: ignore[union-attr]
            for a in corpus for c, p in zip(configs, ours[:3], strict=True)]
    base_elapsed = time.perf_counter() - started
    base_over = sum(not network(c.network).fits(t, c.limit) for t, c in base)
    split = 0
    for (text, _c), a in zip(base, [a for a in corpus for _ in configs], strict=True):
        body = text.rsplit(" ", 1)[0]
        clusters = graphemes(body)
        source = graphemes(a.takeaway.text)  # type: ignore[union-attr]
        split += clusters != source[: len(clusters)]

    n = len(ours)
    print(f"dispatch compose: {n / elapsed:,.0f} posts/s ({elapsed * 1e6 / n:,.0f} µs/post), "
          f"{over} of {n} over the network's limit")
    print(f"baseline (slice by len(), link as 23): {n / base_elapsed:,.0f} posts/s, "
          f"{base_over} of {n} over the limit by the network's rule, "
          f"{split} split a grapheme cluster")


if __name__ == "__main__":
    main()
