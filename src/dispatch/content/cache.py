"""The load cache: parsed articles keyed by file size, mtime and hash.

A warm pass over unchanged files only stats them and reads this cache, which
is what makes re-scanning a 10,000-article site cheap.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
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


def article_to_json(article: Article) -> str:
    data = asdict(article)
    data["date"] = article.date.isoformat()
    data["updated"] = article.updated.isoformat() if article.updated else None
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def article_from_json(text: str) -> Article:
    data: dict[str, Any] = json.loads(text)
    data["date"] = datetime.fromisoformat(data["date"])
    data["updated"] = datetime.fromisoformat(data["updated"]) if data["updated"] else None
    data["tags"] = tuple(data["tags"])
    data["sources"] = tuple(data["sources"])
    data["social"] = tuple(tuple(pair) for pair in data["social"])
    if data["takeaway"] is not None:
        data["takeaway"] = Takeaway(**data["takeaway"])
    return Article(**data)


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
