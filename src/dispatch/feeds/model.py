"""What a feed says, independent of its format.

Articles become :class:`Entry` values and are grouped into :class:`Feed`
values (the site-wide feed and one per category). The three renderers only
format these, so every rule about ids, dates, ordering and cleaning lives
here once.

**Entry ids.** An entry's id is a ``tag:`` URI (RFC 4151) built from the host
of the site's URL (``[site] url``, not the feeds' URL, so moving the feed
files to a CDN changes no id), the UTC date of the article's publication and its
slug: ``tag:journal.example,2026-10-06:short-sleep``. Editing the body, the
title or ``updated`` never changes it, nor does a rebuild, a move from http to
https or a new URL layout. It changes only if the writer edits the slug or the
publication ``date`` itself — and then the article really is a different
URL. The article format has no id key, so nothing steadier is available.
"""

from __future__ import annotations

import functools
import mimetypes
import operator
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import sha1
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from dispatch.config import Settings
from dispatch.feeds.formats import file_name, format_names
from dispatch.feeds.settings import FeedSettings
from dispatch.models import Article
from dispatch.values import controls

# XML 1.0 forbids C0 controls other than TAB/LF/CR, surrogates and U+FFFE/FFFF;
# DEL and the C1 block are legal but never meant in prose and break some
# readers. feedgen accepts them when set and then fails the whole render,
# so they are stripped before feedgen ever sees them.
XML_ILLEGAL = controls.XML_ILLEGAL



def xml_text(value: str) -> str:
    # search() first: almost every string is clean, and sub() would copy it.
    return XML_ILLEGAL.sub("", value) if XML_ILLEGAL.search(value) else value


@functools.lru_cache(maxsize=4096)  # a site has few categories; every build asks again
def category_slug(name: str) -> str:
    """``"Heart health"`` → ``heart-health``; ``"Santé"`` → ``sante``.

    A name with no Latin letters at all still needs a stable, safe folder name,
    so it falls back to a short hash of the name.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug or "c-" + sha1(name.encode("utf-8")).hexdigest()[:10]


def aware(value: datetime, tz: ZoneInfo) -> datetime:
    """feedgen raises on naive datetimes (§2.2 #7); read a naive one as site-local."""
    return value.replace(tzinfo=tz) if value.tzinfo is None else value


def entry_id(article: Article, host: str, tz: ZoneInfo) -> str:
    day = aware(article.date, tz).astimezone(UTC).date().isoformat()
    return f"tag:{host},{day}:{article.slug}"


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    title: str
    url: str
    published: datetime
    updated: datetime
    author: str
    categories: tuple[str, ...]
    summary: str
    content_html: str
    image: str | None = None
    image_type: str | None = None
    external_url: str | None = None


@dataclass(frozen=True, slots=True)
class Feed:
    path: str
    """Folder of the three files relative to the output folder: ``""`` or ``category/<slug>``."""
    title: str
    description: str
    home_url: str
    self_urls: tuple[tuple[str, str], ...]
    """(format, public URL) for every registered format, in registry order."""
    language: str
    author: str
    updated: datetime
    entries: tuple[Entry, ...]
    icon: str | None = None
    logo: str | None = None
    hub: str | None = None

    def self_url(self, fmt: str) -> str:
        return dict(self.self_urls)[fmt]

    def file(self, fmt: str) -> str:
        return f"{self.path}/{file_name(fmt)}" if self.path else file_name(fmt)


def to_entry(article: Article, settings: Settings, feeds: FeedSettings) -> Entry:
    tz = settings.site.tz
    published = aware(article.date, tz)
    # Never "now": an entry's updated time must come from the article, or
    # every rebuild would look like an edit (§2.2 #5).
    updated = max(published, aware(article.updated, tz)) if article.updated else published
    categories = tuple(dict.fromkeys(
        xml_text(c) for c in ((article.category,) if article.category else ()) + article.tags
    ))
    content = article.body_html + (article.sources_html or "")
    image_type = None
    if article.image:
        image_type = mimetypes.guess_type(article.image.split("?")[0])[0] or "image/jpeg"
    external = article.canonical_url if article.canonical_url not in (None, article.url) else None
    return Entry(
        id=entry_id(article, urlsplit(settings.site.url).hostname or "localhost", tz),
        title=xml_text(article.title),
        url=article.url,
        published=published,
        updated=updated,
        author=xml_text(article.author or settings.site.author or settings.site.title),
        categories=categories,
        summary=xml_text(article.summary),
        content_html=xml_text(content),
        image=article.image,
        image_type=image_type,
        external_url=external,
    )


def _cutoff(now: datetime, tz: ZoneInfo) -> datetime:
    """``now`` in the site's zone when that compares exactly, else ``now``.

    Loaded dates carry the site's ZoneInfo, and comparing two datetimes of
    one zone skips the offset lookup (10x faster over 10,000 articles than
    comparing with a UTC ``now``). It compares wall times, which only differs
    from real time for dates within a DST shift (≤ 2 h) of ``now`` across a
    change — so near a change the real-time ``now`` is used instead.
    """
    window = timedelta(hours=3)
    if (now - window).astimezone(tz).utcoffset() != (now + window).astimezone(tz).utcoffset():
        return now
    return now.astimezone(tz)


def _published_by_category(
        articles: Iterable[Article], now: datetime, tz: ZoneInfo,
) -> tuple[dict[str | None, list[Article]], bool, datetime | None] | None:
    """The articles published at ``now`` (:meth:`Article.is_published`),
    grouped by category as written, in input order, whether that order is
    oldest first, and the date of the next scheduled article; ``None`` when a
    date needs :func:`_published_by_category_exact`.

    This runs over every article of the site on every build, also when only
    one feed needs rendering, so it is the one pass over all of them: the
    filter, the check for the slow path, the grouping and the order check
    happen together, while each article's fields are in the CPU cache. The
    loader hands articles over sorted by date, so usually no group needs
    sorting at all (see :func:`_newest`). Publication itself (``date <=
    now``) always answers as in real time (see :func:`_cutoff`).
    """
    cutoff = _cutoff(now, tz)
    groups: defaultdict[str | None, list[Article]] = defaultdict(list)
    ordered = True
    previous = _EARLIEST
    due = _LATEST
    try:
        for article in articles:
            if article.status == "published":
                date = article.date
                if date <= cutoff:
                    if date < previous:
                        ordered = False
                    if date.fold:
                        return None
                    previous = date
                    groups[article.category].append(article)
                elif date < due:
                    due = date
    except TypeError:  # a naive date cannot be compared with an aware one
        return None
    return groups, ordered, (None if due is _LATEST else due)


def _published_by_category_exact(
        articles: Iterable[Article], now: datetime, tz: ZoneInfo,
) -> tuple[dict[str | None, list[Article]], datetime | None]:
    """The slow path, for hand-built articles only: a naive date (read as
    site-local) cannot be compared with aware ones, and Python compares two
    datetimes of the same zone by wall time, ignoring ``fold`` — wrong in the
    repeated hour when a DST change ends. The loader never produces either."""
    groups: dict[str | None, list[Article]] = {}
    due: datetime | None = None
    for article in articles:
        if article.status == "published":
            date = aware(article.date, tz)
            if date <= now:
                groups.setdefault(article.category, []).append(article)
            elif due is None or date < due:
                due = date
    return groups, due


def _newest(articles: Sequence[Article], limit: int, oldest_first: bool) -> list[Article]:
    """The first ``limit`` of ``articles`` newest publication first; equal
    dates by slug, so the order never depends on file-system order or on
    which file was loaded first.

    Only dates are compared over the whole group, and only when it is not
    already ``oldest_first`` (then its tail is the newest): one C-level sort
    on the datetimes themselves, ~15x faster than sorting by
    ``timestamp()``. The slug order is settled among the few kept, widened
    by every article that ties with the last one kept. Python orders two
    datetimes of the *same* zone by wall time; that equals real time for
    everything the loader produces (it never sets ``fold``), except a time
    written inside a spring-forward gap, which sorts where its wall time says.
    """
    if len(articles) <= limit:
        kept = list(articles)
    elif oldest_first:
        start = len(articles) - limit
        last = articles[start].date
        # "Not older" rather than "equal": sorting itself only asks "<".
        while start > 0 and not articles[start - 1].date < last:
            start -= 1
        kept = list(articles[start:])
    else:
        kept = sorted(articles, key=_DATE, reverse=True)
        last = kept[limit - 1].date
        end = limit
        while end < len(kept) and not kept[end].date < last:
            end += 1
        del kept[end:]
    kept.sort(key=_SLUG)
    kept.sort(key=_DATE, reverse=True)  # stable: slug order survives among equal dates
    del kept[limit:]
    return kept


def newest(articles: Sequence[Article], limit: int) -> list[Article]:
    """The first ``limit`` of ``articles`` in feed order (newest first, equal
    dates by slug), whatever order they come in."""
    return _newest(articles, limit, False)


def _newest_exact(articles: Sequence[Article], limit: int, tz: ZoneInfo) -> list[Article]:
    """:func:`_newest` by real time, for :func:`_published_by_category_exact`."""
    keyed = sorted(articles, key=_SLUG)
    keyed.sort(key=lambda a: aware(a.date, tz).timestamp(), reverse=True)
    return keyed[:limit]


_SLUG = operator.attrgetter("slug")
_DATE = operator.attrgetter("date")
# Before any article, in any zone (an article at this very instant only costs a sort).
_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class FeedPlan:
    """A feed before rendering: which articles, under which name."""

    path: str
    title: str
    description: str
    articles: tuple[Article, ...]
    names: tuple[str, ...] = ()
    """A category feed's spellings of its category (all sharing its slug)."""

    def digest(self, context: str) -> str:
        """Everything the rendered bytes depend on, hashed cheaply.

        ``context`` is :func:`digest_context`: what all feeds of a build share.

        An article's content is represented by its ``content_hash`` (the
        digest of its source file) and the derived fields are keyed by
        ``settings.fingerprint``, exactly as the load cache keys them. A few
        cheap fields are added so that a hand-built article (tests,
        benchmarks) that forgets to change ``content_hash`` still changes the
        digest when its title, category or body length change. Dates are left
        out on purpose: formatting a thousand zoned datetimes would cost more
        than the rest of a one-article rebuild's planning, and in a loaded
        article they come from the file like everything else.
        """
        h = sha1(usedforsecurity=False)
        h.update(f"{context}\0{self.path}\0{self.title}\0{self.description}\n".encode(
            "utf-8", "surrogatepass"))
        h.update("\n".join([
            f"{a.slug}\0{a.content_hash}\0{a.title}\0{a.category}\0{a.body_length}"
            for a in self.articles
        ]).encode("utf-8", "surrogatepass"))
        return h.hexdigest()


def digest_context(settings: Settings, feeds: FeedSettings) -> str:
    """The settings every feed's bytes depend on, for :meth:`FeedPlan.digest`."""
    return repr((settings.site, settings.fingerprint, feeds))


@dataclass(frozen=True, slots=True)
class Planned:
    """Every feed of a build, and when the next scheduled article is due."""

    feeds: tuple[FeedPlan, ...]
    next_due: datetime | None


def site_plan(settings: Settings, articles: Sequence[Article]) -> FeedPlan:
    site = settings.site
    return FeedPlan("", xml_text(site.title), xml_text(site.description or site.title),
                    tuple(articles))


def category_plan(settings: Settings, spellings: Sequence[str],
                  articles: Sequence[Article]) -> FeedPlan:
    """The feed of one category; ``spellings`` sorted, all of one slug."""
    site = settings.site
    title = xml_text(spellings[0])
    return FeedPlan(f"category/{category_slug(spellings[0])}", f"{xml_text(site.title)}: {title}",
                    f"{title} — {xml_text(site.description or site.title)}", tuple(articles),
                    tuple(spellings))


def plan_feeds(settings: Settings, feeds: FeedSettings, articles: Sequence[Article],
               now: datetime) -> Planned:
    """Every feed to write: site-wide first, then categories by slug.

    A feed with no published entry is not planned: it would have no honest
    ``updated`` time to give.
    """
    tz = settings.site.tz
    limit = feeds.entries
    grouped = _published_by_category(articles, now, tz)
    if grouped is None:
        groups, next_due = _published_by_category_exact(articles, now, tz)
        def newest(group: Sequence[Article], oldest_first: bool = False) -> list[Article]:
            return _newest_exact(group, limit, tz)
    else:
        groups, ordered, next_due = grouped
        def newest(group: Sequence[Article], oldest_first: bool = False) -> list[Article]:
            return _newest(group, limit, oldest_first and ordered)

    # Fold spellings of a category that share a slug ("Heart health",
    # "heart-health") into one feed; its name is chosen by sorting, not by
    # load order.
    by_slug: dict[str, list[str]] = {}
    for name in groups:
        if name:
            by_slug.setdefault(category_slug(name), []).append(name)
    categories: list[FeedPlan] = []
    # The site-wide feed's entries are among its categories' newest and the
    # uncategorised newest: merging those few spares a sort of the whole site.
    # (Concatenated groups are no longer in input order.)
    uncategorised = [groups[name] for name in groups if not name]
    candidates = newest(uncategorised[0] if len(uncategorised) == 1
                        else [a for group in uncategorised for a in group],
                        oldest_first=len(uncategorised) == 1)
    for slug in sorted(by_slug):
        spellings = sorted(by_slug[slug])
        if len(spellings) == 1:
            chosen = newest(groups[spellings[0]], oldest_first=True)
        else:
            chosen = newest([a for name in spellings for a in groups[name]])
        candidates += chosen
        categories.append(category_plan(settings, spellings, chosen))
    if not candidates:
        return Planned((), next_due)
    return Planned((site_plan(settings, newest(candidates)), *categories), next_due)


def make_feed(plan: FeedPlan, settings: Settings, feeds: FeedSettings,
              cache: dict[str, Entry] | None = None) -> Feed:
    """The renderable :class:`Feed` for a plan; ``cache`` shares entries
    between the site-wide and category feeds of one build."""
    cache = {} if cache is None else cache
    entries: list[Entry] = []
    for article in plan.articles:
        entry = cache.get(article.slug)
        if entry is None:
            entry = cache[article.slug] = to_entry(article, settings, feeds)
        entries.append(entry)
    site = settings.site
    prefix = f"{feeds.base_url}/{plan.path}/" if plan.path else f"{feeds.base_url}/"
    return Feed(
        path=plan.path, title=plan.title, description=plan.description,
        home_url=site.url + "/",
        self_urls=tuple((fmt, prefix + file_name(fmt)) for fmt in format_names()),
        language=site.language, author=xml_text(site.author or site.title),
        # The feed is as new as its newest entry, never the build time (§2.2 #5).
        updated=max(e.updated for e in entries), entries=tuple(entries),
        icon=feeds.icon, logo=feeds.logo, hub=feeds.hub,
    )
