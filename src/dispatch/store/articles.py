"""What the store remembers about articles: the load cache and publications."""

from __future__ import annotations

import gc
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from dispatch.content.cache import (
    CacheEntry,
    article_from_bytes,
    article_to_bytes,
    body_from_bytes,
    body_to_bytes,
    problems_from_json,
    problems_to_json,
)
from dispatch.errors import ContentError
from dispatch.models import META_FIELDS, Article, Body, StoredArticle
from dispatch.store.engine import Store, chunks

# The reads a warm command needs (the load cache, who holds each slug) are
# plain SQL through Store.rows, which needs no SQLAlchemy on SQLite; the
# writes use SQLAlchemy, imported when a write happens.


class StoreCache:
    """:class:`~dispatch.content.cache.ArticleCache` backed by the store.

    It hands out :class:`~dispatch.models.StoredArticle` objects: their
    bodies stay in the ``body`` column until read, and the few most recently
    read are kept here (an email or a feed entry reads one body several times).

    ``read_only``: use what is cached and write nothing (``dispatch check``
    and ``preview``, which must leave the store as they found it); a file
    parsed afresh is then held as parsed.
    """

    RECENT_BODIES = 64

    def __init__(self, store: Store, *, read_only: bool = False) -> None:
        self.store = store
        self.read_only = read_only
        self._recent: OrderedDict[tuple[str, str], Body] = OrderedDict()
        # A pass may render in more than one thread (delivery runs beside it).
        self._lock = threading.Lock()

    def load_entries(self) -> Mapping[str, CacheEntry]:
        entries: dict[str, CacheEntry] = {}
        # Tens of thousands of new objects, none of them garbage: pausing the
        # cyclic collector spares it repeated walks over everything already
        # loaded (a third of a warm pass on a 10,000-article site).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            rows = self.store.stream("SELECT source, size, mtime_ns, sha256, fingerprint, "
                                     "article, warnings FROM article_cache")
            for source, size, mtime_ns, sha, fingerprint, article, warnings in rows:
                entries[source] = CacheEntry(
                    source, size, mtime_ns, sha, sys.intern(fingerprint),
                    article_from_bytes(bytes(article), self, sha), problems_from_json(warnings))
        finally:
            if gc_was_enabled:
                gc.enable()
        return entries

    def save_entries(self, entries: Iterable[CacheEntry], forget: Iterable[str]) -> None:
        if self.read_only:
            return
        rows = [
            {"source": e.source, "size": e.size, "mtime_ns": e.mtime_ns, "sha256": e.sha256,
             "fingerprint": e.fingerprint, "article": article_to_bytes(e.article),
             "body": body_to_bytes(e.article), "warnings": problems_to_json(e.warnings)}
            for e in entries
        ]
        gone = list(forget)
        if not rows and not gone:
            return
        from sqlalchemy import delete, insert

        from dispatch.store.schema import article_cache

        with self.store.write() as conn:
            sources = [r["source"] for r in rows] + gone
            for part in chunks(sources):
                conn.execute(delete(article_cache).where(article_cache.c.source.in_(part)))
            if rows:
                conn.execute(insert(article_cache), rows)

    def kept(self, entry: CacheEntry) -> Article:
        article = entry.article
        if self.read_only:
            return article  # not saved: its body is only here
        return StoredArticle.make({name: getattr(article, name) for name in META_FIELDS},
                                  self, entry.sha256, article.body_length)

    def body(self, source: str, sha256: str) -> Body:
        key = (source, sha256)
        with self._lock:
            found = self._recent.get(key)
            if found is not None:
                self._recent.move_to_end(key)
                return found
        found_rows = self.store.rows("SELECT body FROM article_cache WHERE source = :source "
                                     "AND sha256 = :sha256", {"source": source, "sha256": sha256})
        data = bytes(found_rows[0][0]) if found_rows else None
        if data is None:
            raise ContentError(f"{source}: changed while this command ran; "
                               "run it again to use the new version")
        found = body_from_bytes(data)
        with self._lock:
            self._recent[key] = found
            if len(self._recent) > self.RECENT_BODIES:
                self._recent.popitem(last=False)
        return found


WITHDRAWN = "withdrawn"
"""``content_hash`` of a recorded article that is not published any more."""


@dataclass(frozen=True, slots=True)
class Publication:
    """What a pass learned: articles published for the first time, and
    already-published articles whose content changed."""

    new: tuple[Article, ...]
    changed: tuple[Article, ...]
    first: bool = False
    """Nothing was recorded before this pass: a fresh install's back catalogue
    is recorded as already published, not announced as news."""


def record_publications(store: Store, articles: Sequence[Article], now: datetime) -> Publication:
    """Record every article published as of ``now``; idempotent.

    An article counts as new only the first time it is seen published, so a
    re-run, a restart or an edit never makes it new again.
    """
    from sqlalchemy import select, update

    from dispatch.store.schema import published_articles as t

    published = [a for a in articles if a.is_published(now)]
    new: list[Article] = []
    changed: list[Article] = []
    with store.write() as conn:
        known = {row.slug: row.content_hash
                 for row in conn.execute(select(t.c.slug, t.c.content_hash))}
        candidates = [a for a in published if a.slug not in known]
        for article in published:
            seen = known.get(article.slug)
            if seen is not None and seen != article.content_hash:
                changed.append(article)
        # An article no longer published (deleted, back to draft, moved to
        # the future) keeps its record, marked withdrawn: when it comes back,
        # even as the very same file, it counts as changed, so whatever was
        # built without it (the feeds) takes it back in.
        gone = set(known).difference(a.slug for a in published)
        gone = {slug for slug in gone if known[slug] != WITHDRAWN}
        if gone:
            for part in chunks(sorted(gone)):
                conn.execute(update(t).where(t.c.slug.in_(part))
                             .values(content_hash=WITHDRAWN, changed_at=now))
        if candidates:
            # The unique slug decides, not our read above: a second pass
            # running at the same moment inserts nothing and sees nothing new.
            inserted = set(conn.execute(
                store.insert_ignore(t).returning(t.c.slug),
                [{"slug": a.slug, "source": a.source, "content_hash": a.content_hash,
                  "published_at": a.date, "first_seen_at": now, "changed_at": now}
                 for a in candidates],
            ).scalars())
            new = [a for a in candidates if a.slug in inserted]
        for article in changed:
            conn.execute(update(t).where(t.c.slug == article.slug).values(
                content_hash=article.content_hash, source=article.source, changed_at=now))
    return Publication(tuple(new), tuple(changed), first=not known)


def first_seen(store: Store) -> dict[str, datetime]:
    """When each published slug was first seen published."""
    from sqlalchemy import select

    from dispatch.store.schema import published_articles as t

    with store.read() as conn:
        return {row.slug: row.first_seen_at
                for row in conn.execute(select(t.c.slug, t.c.first_seen_at))}


def changed_since(store: Store, since: datetime) -> set[str]:
    """Slugs first published or last changed at or after ``since``."""
    from sqlalchemy import select

    from dispatch.store.schema import published_articles as t

    with store.read() as conn:
        return set(conn.execute(select(t.c.slug).where(t.c.changed_at >= since)).scalars())


def slug_holders(store: Store) -> dict[str, str]:
    """Each recorded slug and the file that published it: it keeps the slug
    when another file claims it too."""
    return dict(store.rows("SELECT slug, source FROM published_articles"))


def recorded_hashes(store: Store) -> dict[str, str]:
    """Each recorded slug and the content hash it was last published with
    (``WITHDRAWN`` once it left): an article whose hash differs is new or
    changed, and is checked before it reaches any channel."""
    from sqlalchemy import select

    from dispatch.store.schema import published_articles as t

    with store.read() as conn:
        return {row.slug: row.content_hash
                for row in conn.execute(select(t.c.slug, t.c.content_hash))}
