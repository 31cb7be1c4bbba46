"""``[email]`` in dispatch.toml, as written (``render/settings.py`` derives
the values the renderer uses from it)."""

from __future__ import annotations

import re

from pydantic import field_validator

from dispatch.sections import SectionModel

# Characters a bare address may use and need no escaping in a mailto: URL
# inside a header (the address itself is checked by values.address).
_MAILTO_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                         ".!$'*+=_~-@")
_ASPECT = re.compile(r"\s*([0-9]{1,5})\s*:\s*([0-9]{1,5})\s*")


def aspect(value: str) -> tuple[int, int] | None:
    """``"16:9"`` as (16, 9); None for anything else, zero included."""
    match = _ASPECT.fullmatch(value)
    if match is None:
        return None
    across, down = int(match.group(1)), int(match.group(2))
    return (across, down) if across and down else None


class EmailOptions(SectionModel):
    name_fallback: str | None = None
    """recipient.name where a subscriber has no name (default "reader")."""
    first_name_fallback: str | None = None
    """recipient.first_name where a subscriber has no name (default "there": "Hi there,")."""
    list_id: str | None = None
    """``List-Id`` header, e.g. ``Weekly <weekly.example.org>``; derived from the site."""
    digest_subject: str | None = None
    """Jinja template of a digest's subject."""
    article_subject: str | None = None
    """Jinja template of a single article's subject."""
    digest_intro: str | None = None
    """The line above a digest's articles."""
    disclaimer: str | None = None
    """A line in every footer (e.g. not medical advice)."""
    why: str | None = None
    """The "why you get this" footer line; derived from the site title."""
    image_alt_fallback: str | None = None
    """Alt text for an image that has none."""
    unsubscribe_mailto: str | None = None
    """Adds a mailto: form to List-Unsubscribe; empty for https only."""
    allow_clip: bool | None = None
    """true lets an email past Gmail's 102 KB clip render (check still warns)."""
    image_aspect: str | None = None
    """``"16:9"``: width:height assumed for images whose size cannot be read."""
    utm: dict[str, str] | None = None
    """``[email.utm]``: query parameters added to links to the site."""

    @field_validator("list_id")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and ("\n" in value or "\r" in value):
            raise ValueError("one line")
        return value

    @field_validator("unsubscribe_mailto")
    @classmethod
    def _mailbox(cls, value: str | None) -> str | None:
        from dispatch.values.address import address_problem  # email-validator: slow

        bare = (value or "").removeprefix("mailto:")
        if value and (address_problem(bare) is not None
                      or not set(bare) <= _MAILTO_SAFE):
            raise ValueError('a plain email address such as "unsubscribe@example.org"')
        # Each message writes "+TOKEN" (up to 37 characters) after the local
        # part, and a local part holds at most 64.
        if value and len(value.removeprefix("mailto:").split("@")[0]) > 27:
            raise ValueError("an address whose part before the @ has at most 27 characters "
                             "(room for the +TOKEN each message adds)")
        return None if value is None else value.removeprefix("mailto:")

    @field_validator("image_aspect", mode="before")
    @classmethod
    def _ratio(cls, value: object) -> object:
        # Before the type check, so that 1.78 is told the form a ratio takes.
        if value is not None and (not isinstance(value, str) or aspect(value) is None):
            raise ValueError('a ratio of two positive whole numbers, e.g. "16:9"')
        return value
