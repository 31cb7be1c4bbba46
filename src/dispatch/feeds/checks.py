"""What ``dispatch check`` reports about feeds, before a build would meet it.

The loader already removes control characters from the body and rejects them
in titles; the other fields that reach a feed (summary, category, tags,
author, image URL) are checked here, because the feed writer strips them
silently — they should not pass unnoticed.
"""

from __future__ import annotations

from collections.abc import Sequence

from dispatch.config import Settings
from dispatch.errors import ConfigError, Problem, Severity
from dispatch.feeds.model import XML_ILLEGAL, category_slug
from dispatch.feeds.settings import load_feed_settings
from dispatch.models import Article


def feed_problems(settings: Settings, articles: Sequence[Article]) -> list[Problem]:
    problems: list[Problem] = []
    try:
        load_feed_settings(settings)
    except ConfigError as exc:
        problems.extend(exc.problems)
    for article in articles:
        fields: list[tuple[str, str | None]] = [
            ("summary", article.summary), ("category", article.category),
            ("author", article.author), ("image", article.image),
        ] + [("tags", tag) for tag in article.tags]
        for name, value in fields:
            if value and (match := XML_ILLEGAL.search(value)):
                problems.append(Problem(
                    article.source, f"control character U+{ord(match.group()):04X} is not "
                    "allowed in XML; it is left out of the feeds", None, name, "printable text",
                    Severity.WARNING))
    problems.extend(_category_clashes(articles))
    return problems


def _category_clashes(articles: Sequence[Article]) -> list[Problem]:
    """Two spellings of one category share one feed folder; say so once each."""
    names: dict[str, dict[str, str]] = {}
    for article in articles:
        if article.category:
            names.setdefault(category_slug(article.category), {}).setdefault(
                article.category, article.source)
    problems = []
    for slug, spellings in sorted(names.items()):
        if len(spellings) > 1:
            listed = ", ".join(f"{name!r} ({source})" for name, source in sorted(spellings.items()))
            first_source = min(spellings.values())
            problems.append(Problem(
                first_source, f"categories {listed} share the feed category/{slug}/",
                None, "category", "one spelling per category", Severity.WARNING))
    return problems
