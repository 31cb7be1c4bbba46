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
from sys import intern
from typing import Any, Protocol

from dispatch.errors import Problem, Severity
from dispatch.models import (
    BODY_FIELDS,
    Article,
    Body,
    BodySource,
    StoredArticle,
    Takeaway,
)


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

    def kept(self, entry: CacheEntry) -> Article:
        """The article to hold after ``entry`` is saved: the cache may hand
        back one whose body it keeps (a :class:`StoredArticle`)."""
        ...


RULES_VERSION = "3"
"""Raised whenever loading starts refusing or warning about something it used
to accept (version 2: dates near the calendar's ends, nesting too deep to
render, bidirectional controls in text fields; 3: a hero image that is not a
web address or a site path): an article cached under the old rules is
checked again instead of skipping the new ones."""

CACHE_FORMAT = "|".join([
    f"rules{RULES_VERSION}", "marshal", str(marshal.version),
    f"py{sys.version_info[0]}.{sys.version_info[1]}",
    ",".join(f.name for f in fields(Article)), "split-body",
])
"""Part of every cache key: new loading rules, a new Python (marshal's format)
or a changed Article layout makes old entries miss instead of loading wrongly."""

_FIELD_NAMES = tuple(f.name for f in fields(Article))
_META_NAMES = tuple(name for name in _FIELD_NAMES if name not in BODY_FIELDS)
_DATE_FIELDS = {"date", "updated"}
_SHARED_FIELDS = ("category", "author", "status")


def article_to_bytes(article: Article) -> bytes:
    """Encode everything but the body as a marshal'd tuple of plain values.

    marshal, not JSON: a warm pass decodes every cached article, and on
    10,000 articles JSON decoding alone took most of the one-second budget;
    marshal reads the same strings about four times faster. The cache lives
    on this machine only, and CACHE_FORMAT guards its format. The body
    (:func:`body_to_bytes`) is a column of its own, read only when an
    article's body is.
    """
    values: list[Any] = []
    for name in _META_NAMES:
        value = getattr(article, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Takeaway):
            value = (value.html, value.text)
        values.append(value)
    values.append(article.body_length)
    return marshal.dumps(tuple(values))


def body_to_bytes(article: Article) -> bytes:
    return marshal.dumps(tuple(getattr(article, name) for name in BODY_FIELDS))


def body_from_bytes(data: bytes) -> Body:
    markdown, html, sources, excerpt = marshal.loads(data)
    return markdown, html, sources, excerpt


def article_from_bytes(data: bytes, bodies: BodySource, sha256: str) -> StoredArticle:
    """The article of :func:`article_to_bytes`, its body left in ``bodies``."""
    *meta, body_length = marshal.loads(data)
    values = dict(zip(_META_NAMES, meta, strict=True))
    for name in _DATE_FIELDS:
        if values[name] is not None:
            values[name] = datetime.fromisoformat(values[name])
    if values["takeaway"] is not None:
        values["takeaway"] = Takeaway(*values["takeaway"])
    if values["content_hash"] == sha256:
        values["content_hash"] = sha256  # the file's digest: one string, not two
    # Few distinct values across thousands of articles: one copy of each.
    for name in _SHARED_FIELDS:
        if values[name] is not None:
            values[name] = intern(values[name])
    values["tags"] = tuple(intern(tag) for tag in values["tags"])
    return StoredArticle.make(values, bodies, sha256, body_length)


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

    def kept(self, entry: CacheEntry) -> Article:
        return entry.article
