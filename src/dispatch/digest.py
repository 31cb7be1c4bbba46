"""What a digest holds and what its edition is called: one rule for the
scheduler's digests and for ``dispatch send --digest``.

A digest covers a window of time. An article belongs to it if it is
published, dated at or before the window's end, wanted (the schedule's
filters; email not switched off), not already in an earlier digest of the
same source, and new since the window's start: dated after it, or first
seen after it (so a backdated file added later still goes out once).
``dispatch send --digest --since DATE`` asks for articles *on or after* a
date, so its window includes its start. Articles are listed newest first
(date, then slug), capped at ``limit``.

A schedule's ``starts:`` is about the articles' dates, not about when
dispatch saw them: it is a floor (``not_before``) under every window of
that schedule. An article dated before it never goes in, even when first
seen after it (a site's archive, read for the first time on the day the
digest begins, is not news); one dated at it or later does, even if
dispatch saw it before (it was written ahead of time).

The edition id is what makes a send happen once, so it is deterministic:

- a scheduled digest is named by its schedule and firing
  (``weekly-20261130T080000Z``): running the firing again after a crash
  finds the same edition;
- a digest sent by hand is named by its window, what it holds and its
  audience (``digest.2026-11-23.3a-1f2e3d4c.weekly``): the same command run
  again tomorrow finds the same edition, and a new article since makes a
  new one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from dispatch.models import Article

Wanted = Callable[[Article], bool]


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime
    includes_start: bool = False
    """An article dated exactly at ``start`` belongs (``--since DATE``, ``starts:``)."""
    not_before: datetime | None = None
    """An article dated before this never belongs, whenever first seen (``starts:``)."""


@dataclass(frozen=True, slots=True)
class Firing:
    """A digest sent by a schedule's firing."""

    schedule_id: str
    fire_time: datetime


@dataclass(frozen=True, slots=True)
class ByHand:
    """A digest sent with ``dispatch send --digest`` to these lists."""

    audience: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Digest:
    articles: tuple[Article, ...]
    edition_id: str


def wants_email(article: Article) -> bool:
    """The default filter: the article has not switched email off."""
    return bool(article.email)


def choose(published: Iterable[tuple[Article, datetime]], window: Window, *,
           wanted: Wanted = wants_email, sent: Collection[str] = (),
           limit: int | None = None) -> list[Article]:
    """The articles of ``window`` (see the module doc); ``published`` pairs
    each published article with when it was first seen published."""
    start, end, floor = window.start, window.end, window.not_before
    chosen = [a for a, seen in published
              if a.date <= end and (floor is None or a.date >= floor)
              and (a.date > start or seen > start or (window.includes_start and a.date == start))
              and a.slug not in sent and wanted(a)]
    chosen.sort(key=lambda a: (a.date, a.slug), reverse=True)
    return chosen if limit is None else chosen[:limit]


def edition_id(source: Firing | ByHand, window: Window, articles: Sequence[Article]) -> str:
    """The digest's edition id (see the module doc)."""
    if isinstance(source, Firing):
        return f"{source.schedule_id}-{source.fire_time:%Y%m%dT%H%M%SZ}"
    held = hashlib.sha1("\n".join(sorted(a.slug for a in articles)).encode(),
                        usedforsecurity=False).hexdigest()[:8]
    # isoformat, not %Y: strftime leaves years before 1000 unpadded ("1-01-01").
    return (f"digest.{window.start.date().isoformat()}.{len(articles)}a-{held}."
            f"{'+'.join(sorted(set(source.audience)))}")


def decide(published: Iterable[tuple[Article, datetime]], window: Window,
           source: Firing | ByHand, *, wanted: Wanted = wants_email,
           sent: Collection[str] = (), limit: int | None = None) -> Digest:
    """A digest's articles and its edition id, for the scheduler and the CLI alike."""
    articles = choose(published, window, wanted=wanted, sent=sent, limit=limit)
    return Digest(tuple(articles), edition_id(source, window, articles))


def published_at(articles: Iterable[Article], now: datetime) -> list[tuple[Article, datetime]]:
    """Articles published at ``now``, each "first seen" at its own date (for a
    caller that has no record of when it saw them)."""
    return [(a, a.date) for a in articles if a.is_published(now)]
