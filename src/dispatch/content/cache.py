"""The load cache: parsed articles keyed by file size, mtime and hash.

A warm pass over unchanged files only stats them and reads this cache, which
is what makes re-scanning a 10,000-article site cheap.
"""

from __future__ import annotations

import json
import marshal
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any, Protocol

from dispatch.errors import Problem, Severity
from dispatch.models import Article, Takeaway


@dataclass(frozen=True, slots=True)
class CacheEntry:
    source: str
    size: int
    mtime_ns: int
    sha256: str
    fingerprint: str
    article: Article
    warnings: tuple[Problem, ...]


class ArticleCache(Protocol):
    def load_entries(self) -> Mapping[str, CacheEntry]: ...

    def save_entries(self, entries: Iterable[CacheEntry], forget: Iterable[str]) -> None: ...


RULES_VERSION = "2"
"""Raised whenever loading starts refusing or warning about something it used
to accept (version 2: dates near the calendar's ends, nesting too deep to
render, bidirectional controls in text fields): an article cached under the
old rules is checked again instead of skipping the new ones."""

CACHE_FORMAT = "|".join([
    f"rules{RULES_VERSION}", "marshal", str(marshal.version),
    f"py{sys.version_info[0]}.{sys.version_info[1]}",
    ",".join(f.name for f in fields(Article)),
])
"""Part of every cache key: new loading rules, a new Python (marshal's format)
or a changed Article layout makes old entries miss instead of loading wrongly."""


def article_to_bytes(article: Article) -> bytes:
    """Encode an article as a marshal'd tuple of plain values.

    marshal, not JSON: a warm pass decodes every cached article, and on
    10,000 articles JSON decoding alone took most of the one-second budget;
    marshal reads the same strings about four times faster. The cache lives
    on this machine only, and CACHE_FORMAT guards its format.
    """
    values: list[Any] = []
    for f in fields(Article):
        value = getattr(article, f.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Takeaway):
            value = (value.html, value.text)
        values.append(value)
    return marshal.dumps(tuple(values))


_FIELD_NAMES = tuple(f.name for f in fields(Article))
_DATE_FIELDS = {"date", "updated"}


def article_from_bytes(data: bytes) -> Article:
    values = dict(zip(_FIELD_NAMES, marshal.loads(data), strict=True))
    for name in _DATE_FIELDS:
        if values[name] is not None:
            values[name] = datetime.fromisoformat(values[name])
    if values["takeaway"] is not None:
        values["takeaway"] = Takeaway(*values["takeaway"])
    return Article(**values)


def problems_to_json(problems: Iterable[Problem]) -> str:
    problems = list(problems)
    if not problems:
        return ""  # the common case; skips a JSON parse per file on warm passes
    return json.dumps([
        {**asdict(p), "severity": p.severity.value} for p in problems
    ], ensure_ascii=False)


def problems_from_json(text: str) -> tuple[Problem, ...]:
    if not text:
        return ()
    return tuple(
        Problem(**{**item, "severity": Severity(item["severity"])}) for item in json.loads(text)
    )


class MemoryCache:
    """A cache that lives as long as the object; for tests and one-off loads."""

    def __init__(self) -> None:
        self.entries: dict[str, CacheEntry] = {}

    def load_entries(self) -> Mapping[str, CacheEntry]:
        return dict(self.entries)

    def save_entries(self, entries: Iterable[CacheEntry], forget: Iterable[str]) -> None:
        for source in forget:
            self.entries.pop(source, None)
        for entry in entries:
            self.entries[entry.source] = entry
