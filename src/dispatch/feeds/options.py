"""``[feeds]`` in dispatch.toml, as written (see ``feeds/settings.py`` for the
values derived from it)."""

from __future__ import annotations

from pydantic import Field, field_validator

from dispatch.sections import SectionModel
from dispatch.values import urls

MAX_ENTRIES = 1000


class FeedOptions(SectionModel):
    out: str = "public"
    """Output folder, relative to the site folder (``dispatch build --out`` overrides)."""
    entries: int = Field(default=20, ge=1, le=MAX_ENTRIES)
    """Newest entries per feed."""
    url: str | None = None
    """Public base URL the feed files are served under; ``[site] url`` when unset."""
    icon: str | None = None
    """Small square image (Atom icon, JSON Feed favicon); may be site-relative."""
    logo: str | None = None
    """Larger image (Atom logo, RSS image, JSON Feed icon); may be site-relative."""
    hub: str | None = None
    """WebSub hub URL, advertised in every feed."""

    @field_validator("out", "url", "icon", "logo", "hub")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("non-empty text")
        return None if value is None else value.strip()

    @field_validator("url", "hub")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not urls.is_absolute(value):
            raise ValueError("an absolute URL: http:// or https:// followed by a host")
        return value
