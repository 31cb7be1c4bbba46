"""The ``[email]`` table of dispatch.toml, typed and validated.

Every value has a default, so a site without an ``[email]`` table still
renders; a wrong value is a ConfigError that names the key and its line.

``unsubscribe_mailto = "unsubscribe@example.org"`` adds a mailto: form to
every message's ``List-Unsubscribe`` header, after the https one-click URL:
``<mailto:unsubscribe@example.org?subject=unsubscribe%20TOKEN>``, where TOKEN
is the same signed token as in the recipient's unsubscribe URL, so whoever
reads that mailbox (or a script) can unsubscribe the sender with
``dispatch subscribers`` / the web app. Empty (the default): https only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dispatch.config import Settings
from dispatch.errors import ConfigError, Problem, Severity

# Gmail clips the HTML part at about 102 KB; warn well before it.
WARN_BYTES = 90 * 1024
CLIP_BYTES = 102 * 1024

DEFAULT_DIGEST_SUBJECT = (
    "{{ site.title }}: {{ articles|length }} new article{{ '' if articles|length == 1 else 's' }}"
)


@dataclass(frozen=True, slots=True)
class EmailSettings:
    name_fallback: str = "reader"
    """Used where a subscriber has no name: "Hi reader,"."""
    list_id: str = ""
    """``List-Id`` value such as ``Weekly <weekly.example.org>``; derived from the site if empty."""
    digest_subject: str = DEFAULT_DIGEST_SUBJECT
    article_subject: str = "{{ article.title }}"
    digest_intro: str = "Here is what we published recently."
    disclaimer: str = ""
    why: str = ""
    """The "why you get this" line; derived from the site title if empty."""
    utm: tuple[tuple[str, str], ...] = (("utm_source", "newsletter"), ("utm_medium", "email"))
    """Added to links that point at the site; ``utm_campaign`` is the edition id unless set."""
    utm_campaign_from_edition: bool = True
    allow_clip: bool = False
    """Let an edition past Gmail's clip size render anyway (dispatch check still warns)."""
    image_alt_fallback: str = "Illustration"
    unsubscribe_mailto: str = ""
    """Address for the mailto: form of List-Unsubscribe; empty for none."""
    image_aspect: tuple[int, int] = (16, 9)
    """Width:height assumed for an image whose pixel size cannot be read
    (a remote image, a missing file), to give it a height attribute."""

    def why_line(self, settings: Settings) -> str:
        return self.why or (
            f"You are receiving this because you subscribed to {settings.site.title}."
        )

    def mailto_for(self, token: str) -> str | None:
        """The List-Unsubscribe mailto: URL for one recipient's token, if configured."""
        if not self.unsubscribe_mailto:
            return None
        return f"mailto:{self.unsubscribe_mailto}?subject=unsubscribe%20{token}"

    def list_id_for(self, settings: Settings) -> str:
        if self.list_id:
            return self.list_id
        host = re.sub(r"^https?://", "", settings.site.url).split("/")[0].split(":")[0]
        return f"{settings.site.title} <newsletter.{host}>"


_STR_KEYS = ("name_fallback", "list_id", "digest_subject", "article_subject", "digest_intro",
             "disclaimer", "why", "image_alt_fallback", "unsubscribe_mailto")
# A bare address whose characters need no escaping in a mailto: URL inside a header.
_MAILBOX = re.compile(r"^[A-Za-z0-9.!$'*+=_~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")


_ASPECT = re.compile(r"\s*([0-9]{1,5})\s*:\s*([0-9]{1,5})\s*")


def _aspect(value: object) -> tuple[int, int] | None:
    """``"16:9"`` as (16, 9); None for anything else, zero included."""
    match = _ASPECT.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return None
    across, down = int(match.group(1)), int(match.group(2))
    return (across, down) if across and down else None


def load_email_settings(settings: Settings) -> EmailSettings:
    """Parse ``[email]``; raise ConfigError listing every bad key."""
    raw: Mapping[str, Any] = settings.section("email")
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for key in _STR_KEYS:
        if key in raw:
            value = raw[key]
            if not isinstance(value, str):
                problems.append(settings.problem(f"email.{key}", f"{value!r} is not text",
                                                 "a string"))
            elif key in ("list_id",) and ("\n" in value or "\r" in value):
                problems.append(settings.problem(f"email.{key}", "contains a line break",
                                                 "one line"))
            elif key == "unsubscribe_mailto" and value and not _MAILBOX.match(
                    value.removeprefix("mailto:")):
                problems.append(settings.problem(f"email.{key}", f"{value!r} is not a plain "
                                                 "email address",
                                                 'an address such as "unsubscribe@example.org"'))
            elif key == "unsubscribe_mailto":
                values[key] = value.removeprefix("mailto:")
            else:
                values[key] = value
    if "allow_clip" in raw:
        if isinstance(raw["allow_clip"], bool):
            values["allow_clip"] = raw["allow_clip"]
        else:
            problems.append(settings.problem("email.allow_clip", f"{raw['allow_clip']!r} is not "
                                             "true or false", "true or false"))
    if "image_aspect" in raw:
        aspect = _aspect(raw["image_aspect"])
        if aspect is None:
            problems.append(settings.problem("email.image_aspect",
                                             f"{raw['image_aspect']!r} is not a ratio",
                                             'two positive whole numbers, e.g. "16:9"'))
        else:
            values["image_aspect"] = aspect
    utm = raw.get("utm")
    if utm is not None:
        if not isinstance(utm, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in utm.items()
        ):
            problems.append(settings.problem("email.utm", "must be a table of text values",
                                             '[email.utm] with utm_source = "newsletter"'))
        else:
            values["utm"] = tuple((k, v) for k, v in utm.items() if v != "")
            values["utm_campaign_from_edition"] = "utm_campaign" not in utm
    if problems:
        raise ConfigError(problems)
    return EmailSettings(**values)


def size_problems(path: str, html_bytes: int, allow_clip: bool) -> list[Problem]:
    """Gmail's clip, as a Problem: a warning past 90 KB, an error past 102 KB."""
    kb = html_bytes / 1024
    if html_bytes > CLIP_BYTES:
        return [Problem(path, f"HTML part is {kb:.0f} KB; Gmail clips past 102 KB, hiding the "
                        "footer and the unsubscribe link", None, "size", "at most 102 KB",
                        Severity.WARNING if allow_clip else Severity.ERROR)]
    if html_bytes > WARN_BYTES:
        return [Problem(path, f"HTML part is {kb:.0f} KB, close to Gmail's 102 KB clip", None,
                        "size", "under 90 KB", Severity.WARNING)]
    return []
