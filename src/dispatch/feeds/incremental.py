"""Re-plan only the feeds that a few new or changed articles can touch.

A full plan (:func:`~dispatch.feeds.model.plan_feeds`) looks at every article
of the site, which on a large site costs more than rendering the two feeds one
edit affects. The manifest of the last build remembers enough to skip that:
each feed's entries (slugs, newest first), the source digest of every article
in any feed, the time the feeds were built for and when the next scheduled
article falls due. Given the articles published or changed since, a feed's new
entries follow from its old entries and those articles alone — provided every
article outside the feed still ranks below the feed's last entry.

That proviso fails when an article *leaves* a full feed (deleted, back to
draft, moved to another category or to an older date): the article that should
move up is one the manifest never recorded. Then, and whenever anything else
cannot be proved from the manifest (new category, folded category spellings,
settings or renderer changed, time running backwards, a scheduled article now
due that nobody reported), :func:`plan_update` answers ``None`` and the caller
does a full build. The shortcut never guesses: its result is the full plan's,
restricted to the feeds whose bytes can differ (``tests/test_feeds_incremental.py``
checks this against full builds over random edit sequences).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dispatch.config import Settings
from dispatch.feeds.model import FeedPlan, category_plan, category_slug, newest, site_plan
from dispatch.models import Article

ChangedSince = Callable[[datetime], Collection[str]]
"""Slugs of articles that may have been published or edited at or after a
time (more is harmless: an unchanged article costs a lookup)."""


@dataclass(frozen=True, slots=True)
class Update:
    plans: tuple[FeedPlan, ...]
    """The feeds to render again, in manifest order."""
    next_due: datetime | None


def source_key(article: Article) -> str:
    """An article's source digest as the manifest keeps it: 64 bits are plenty
    to notice an edit, and the manifest is read on every update."""
    return article.content_hash[:16]


def _ranks_after(article: Article, floor: Article) -> bool:
    """Whether ``article`` sorts after ``floor`` in a feed (older, or as old
    with a later slug): the order of :func:`~dispatch.feeds.model.newest`."""
    return article.date < floor.date or (article.date == floor.date and article.slug > floor.slug)


def plan_update(manifest: Mapping[str, Any], context_id: str, limit: int, settings: Settings,
                by_slug: Mapping[str, Article], changed_since: ChangedSince,
                now: datetime) -> Update | None:
    """The feeds to re-render at ``now``, or ``None`` when only a full build can tell."""
    try:
        return _plan_update(manifest, context_id, limit, settings, by_slug, changed_since, now)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        # A manifest from an older version or edited by hand, or a naive date
        # that cannot be compared: the full build copes with all of these.
        return None


def _plan_update(manifest: Mapping[str, Any], context_id: str, limit: int, settings: Settings,
                 by_slug: Mapping[str, Article], changed_since: ChangedSince,
                 now: datetime) -> Update | None:
    if manifest.get("context") != context_id:
        return None
    built_for = datetime.fromisoformat(manifest["built_for"])
    # Entries were checked as published at built_for; an unchanged article
    # stays published later, not earlier.
    if now < built_for:
        return None
    due = manifest["next_due"]
    next_due = None if due is None else datetime.fromisoformat(due)
    if next_due is not None and next_due <= now:
        return None
    feeds: dict[str, Any] = manifest["feeds"]
    sources: dict[str, str] = manifest["sources"]
    if "" not in feeds:
        return None

    # Every article in a feed must still exist; one whose source changed is
    # re-examined even if nobody reported it.
    todo: dict[str, Article] = {}
    for slug, digest in sources.items():
        article = by_slug.get(slug)
        if article is None:
            return None
        if article.content_hash[:16] != digest:
            todo[slug] = article
    for slug in changed_since(built_for):
        found = by_slug.get(slug)
        # An article in a feed with its recorded digest is as it was built.
        if found is not None and sources.get(slug) != found.content_hash[:16]:
            todo[slug] = found
    if not todo:
        return Update((), next_due)

    if any(path and len(record["names"]) != 1 for path, record in feeds.items()):
        return None  # folded spellings: the title depends on all of them
    where: dict[str, list[str]] = {}
    if len(todo) > 8:
        for path, record in feeds.items():
            for slug in record["entries"]:
                where.setdefault(slug, []).append(path)
    else:  # a few edits: looking them up beats indexing every entry
        for slug in todo:
            where[slug] = [path for path, record in feeds.items() if slug in record["entries"]]

    touched: dict[str, dict[str, Article]] = {}
    for slug, article in todo.items():
        targets: list[str] = []
        if article.is_published(now):
            targets.append("")
            if article.category:
                path = f"category/{category_slug(article.category)}"
                record = feeds.get(path)
                if record is None or record["names"] != [article.category]:
                    return None  # a new feed, or a new spelling of its name
                targets.append(path)
        elif article.status == "published" and (next_due is None or article.date < next_due):
            next_due = article.date
        if any(path not in targets for path in where.get(slug, ())):
            return None  # it left a feed: something unrecorded moves up
        for path in targets:
            touched.setdefault(path, {})[slug] = article

    plans: list[FeedPlan] = []
    for path, record in feeds.items():
        entering = touched.get(path)
        if entering is None:
            continue
        entries: list[str] = record["entries"]
        candidates = [by_slug[s] for s in entries if s not in entering]
        candidates += entering.values()
        if any(a.date.tzinfo is None or a.date.fold for a in candidates):
            return None  # the full plan orders these by real time (_newest_exact)
        if len(entries) >= limit:
            # Articles outside the feed ranked after its last entry; they
            # still do only if that entry is unchanged and at least ``limit``
            # candidates still rank before it.
            if entries[-1] in todo:
                return None
            floor = by_slug[entries[-1]]
            if sum(not _ranks_after(a, floor) for a in candidates) < limit:
                return None
        chosen = newest(candidates, limit)
        if [a.slug for a in chosen] == entries and all(
                sources.get(a.slug) == source_key(a) for a in chosen):
            continue  # e.g. a new article too old to make this feed
        plans.append(site_plan(settings, chosen) if not path
                     else category_plan(settings, record["names"], chosen))
    return Update(tuple(plans), next_due)
