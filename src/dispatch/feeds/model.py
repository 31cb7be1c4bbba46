"""What a feed says, independent of its format.

Articles become :class:`Entry` values and are grouped into :class:`Feed`
values (the site-wide feed and one per category). The three renderers only
format these, so every rule about ids, dates, ordering and cleaning lives
here once.

**Entry ids.** An entry's id is a ``tag:`` URI (RFC 4151) built from the host
of the feeds' public URL, the UTC date of the article's publication and its
slug: ``tag:journal.example,2026-10-06:short-sleep``. Editing the body, the
title or ``updated`` never changes it, nor does a rebuild, a move from http to
https or a new URL layout. It changes only if the writer edits the slug or the
publication ``date`` itself — and then the article really is a different
URL. The article format has no id key, so nothing steadier is available.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha1
from zoneinfo import ZoneInfo

from dispatch.config import Settings
from dispatch.feeds.settings import FeedSettings
from dispatch.models import Article

# XML 1.0 forbids C0 controls other than TAB/LF/CR, surrogates and U+FFFE/FFFF;
# DEL and the C1 block are legal but never meant in prose and break some
# readers. feedgen accepts them when set and then fails the whole render
# (FIELD-NOTES §2.2 #8), so they are stripped before feedgen ever sees them.
XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")

FORMATS = ("rss", "atom", "json")
FILE_NAMES = {"rss": "feed.xml", "atom": "atom.xml", "json": "feed.json"}


def xml_text(value: str) -> str:
    # search() first: almost every string is clean, and sub() would copy it.
    return XML_ILLEGAL.sub("", value) if XML_ILLEGAL.search(value) else value


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
    """(format, public URL) for rss, atom and json, in that order."""
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
        return f"{self.path}/{FILE_NAMES[fmt]}" if self.path else FILE_NAMES[fmt]


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
        id=entry_id(article, feeds.host, tz),
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


def newest_first(articles: Iterable[Article], tz: ZoneInfo) -> list[Article]:
    """Newest publication first; equal dates by slug, so the order never depends
    on file-system order or on which file was loaded first."""
    by_slug = sorted(articles, key=lambda a: a.slug)
    return sorted(by_slug, key=lambda a: aware(a.date, tz), reverse=True)


def is_live(article: Article, now: datetime, tz: ZoneInfo) -> bool:
    """:meth:`Article.is_published`, tolerating a naive date (read as site-local)."""
    if article.date.tzinfo is None:
        return article.status == "published" and aware(article.date, tz) <= now
    return article.is_published(now)


def plan_feeds(settings: Settings, feeds: FeedSettings, articles: Sequence[Article],
               now: datetime) -> tuple[Feed, ...]:
    """Every feed to write: site-wide first, then categories by slug.

    A feed with no published entry is not planned: it would have no honest
    ``updated`` time to give.
    """
    tz = settings.site.tz
    published = newest_first((a for a in articles if is_live(a, now, tz)), tz)
    cache: dict[str, Entry] = {}

    def entries(chosen: Iterable[Article]) -> tuple[Entry, ...]:
        out: list[Entry] = []
        for article in chosen:
            entry = cache.get(article.slug)
            if entry is None:
                entry = cache[article.slug] = to_entry(article, settings, feeds)
            out.append(entry)
        return tuple(out)

    site = settings.site
    author = xml_text(site.author or site.title)
    description = xml_text(site.description or site.title)
    planned: list[Feed] = []
    if published:
        planned.append(_feed(feeds, "", xml_text(site.title), description, site.url + "/",
                             site.language, author, entries(published[:feeds.entries])))

    groups: dict[str, list[Article]] = {}
    names: dict[str, set[str]] = {}
    for article in published:
        if article.category:
            slug = category_slug(article.category)
            group = groups.setdefault(slug, [])
            if len(group) < feeds.entries:
                group.append(article)
            names.setdefault(slug, set()).add(article.category)
    for slug in sorted(groups):
        name = xml_text(min(names[slug]))
        planned.append(_feed(
            feeds, f"category/{slug}", f"{xml_text(site.title)}: {name}",
            f"{name} — {description}", site.url + "/", site.language, author,
            entries(groups[slug])))
    return tuple(planned)


def _feed(feeds: FeedSettings, path: str, title: str, description: str, home: str,
          language: str, author: str, entries: tuple[Entry, ...]) -> Feed:
    prefix = f"{feeds.base_url}/{path}/" if path else f"{feeds.base_url}/"
    return Feed(
        path=path, title=title, description=description, home_url=home,
        self_urls=tuple((fmt, prefix + FILE_NAMES[fmt]) for fmt in FORMATS),
        language=language, author=author,
        # The feed is as new as its newest entry, never the build time (§2.2 #5).
        updated=max(e.updated for e in entries), entries=entries,
        icon=feeds.icon, logo=feeds.logo, hub=feeds.hub,
    )
