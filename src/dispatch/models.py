"""Values that cross pipeline stages.

They are frozen so that a stage can never change what another stage sees,
and plain enough to be stored as JSON in the load cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

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
