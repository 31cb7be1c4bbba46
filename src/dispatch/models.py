"""Values that cross pipeline stages.

They are frozen so that a stage can never change what another stage sees,
and plain enough to be stored as JSON in the load cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Literal, Protocol

Status = Literal["draft", "published"]


@dataclass(frozen=True, slots=True)
class Takeaway:
    """The article's "Key takeaway" section (or its frontmatter override)."""

    html: str
    text: str


@dataclass(frozen=True, slots=True)
class Article:
    slug: str
    source: str
    """Path of the Markdown file relative to the site root, with forward slashes."""
    title: str
    date: datetime
    """Publication time; always timezone-aware."""
    summary: str
    """The dek, as plain text: frontmatter ``summary`` or the first paragraph."""
    body_markdown: str
    body_html: str
    """Sanitised HTML of the whole body with absolute URLs, footnotes excluded.

    The key-takeaway section is wrapped in ``<div class="key-takeaway">`` so a
    template can highlight it where it stands.
    """
    sources_html: str
    """The footnote list (the article's sources) as HTML, or ``""``."""
    sources: tuple[str, ...]
    """Each footnote as plain text, in order."""
    url: str
    content_hash: str
    reading_minutes: int
    excerpt: str
    category: str | None = None
    tags: tuple[str, ...] = ()
    author: str | None = None
    status: Status = "published"
    updated: datetime | None = None
    image: str | None = None
    image_alt: str | None = None
    canonical_url: str | None = None
    takeaway: Takeaway | None = None
    social: tuple[tuple[str, str], ...] = field(default=())
    """Per-network text overrides from frontmatter, as (network, text) pairs."""
    email: bool = True

    def is_published(self, now: datetime) -> bool:
        """Published means: status says so and the date has come."""
        return self.status == "published" and self.date <= now

    def social_override(self, network: str) -> str | None:
        for name, text in self.social:
            if name == network:
                return text
        return None

    def __hash__(self) -> int:
        # Equal articles share slug and content hash; hashing only those keeps
        # a lazily loaded article (below) from fetching its body to be hashed.
        return hash((self.slug, self.content_hash))

    @property
    def body_length(self) -> int:
        """Characters of ``body_html``; known without reading the body."""
        return len(self.body_html)


Body = tuple[str, str, str, str]
"""``(body_markdown, body_html, sources_html, excerpt)``: the fields of
:data:`BODY_FIELDS`, in that order."""


class BodySource(Protocol):
    """Where a :class:`StoredArticle` fetches its body when it is read."""

    def body(self, source: str, sha256: str) -> Body:
        """The body of that exact file version."""
        ...


class StoredArticle(Article):
    """An article whose large text fields stay in the load cache until read.

    A site of fifty thousand articles would hold about 15 KB per article if
    every body stayed in memory, yet a pass renders only a feed's newest
    entries, an edition's few articles or a check's subject. Everything else
    is here as usual; ``body_markdown``, ``body_html``, ``sources_html`` and
    ``excerpt`` are fetched from the :class:`BodySource` on each read (it keeps a few
    recent ones), so holding every article of a big site stays cheap.

    It compares equal to the plain :class:`Article` with the same fields, and
    pickles or copies as that plain article.
    """

    __slots__ = ("_bodies", "_body_length", "_sha256")

    _bodies: BodySource
    _sha256: str
    _body_length: int

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("StoredArticle is made by StoredArticle.make, from the load cache")

    @classmethod
    def make(cls, meta: dict[str, object], bodies: BodySource, sha256: str,
             body_length: int) -> StoredArticle:
        """``meta``: every field of :class:`Article` except :data:`BODY_FIELDS`."""
        self = object.__new__(cls)
        for name in META_FIELDS:
            object.__setattr__(self, name, meta[name])
        object.__setattr__(self, "_bodies", bodies)
        object.__setattr__(self, "_sha256", sha256)
        object.__setattr__(self, "_body_length", body_length)
        return self

    @property
    def body_markdown(self) -> str:
        return self._bodies.body(self.source, self._sha256)[0]

    @property
    def body_html(self) -> str:
        return self._bodies.body(self.source, self._sha256)[1]

    @property
    def sources_html(self) -> str:
        return self._bodies.body(self.source, self._sha256)[2]

    @property
    def excerpt(self) -> str:
        return self._bodies.body(self.source, self._sha256)[3]

    @property
    def body_length(self) -> int:
        return self._body_length

    def plain(self) -> Article:
        """The same article with its body in memory."""
        return Article(**{f.name: getattr(self, f.name) for f in fields(Article)})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Article):
            return NotImplemented
        if self is other:
            return True
        return all(getattr(self, f.name) == getattr(other, f.name) for f in fields(Article))

    __hash__ = Article.__hash__

    def __repr__(self) -> str:
        return f"StoredArticle(slug={self.slug!r}, source={self.source!r})"

    def __reduce__(self) -> tuple[object, ...]:
        return (_plain, (self.plain(),))


BODY_FIELDS = ("body_markdown", "body_html", "sources_html", "excerpt")
"""The fields a :class:`StoredArticle` leaves in the load cache."""

META_FIELDS = tuple(f.name for f in fields(Article) if f.name not in BODY_FIELDS)
"""Every other field, the ones a :class:`StoredArticle` holds."""


def _plain(article: Article) -> Article:
    return article
