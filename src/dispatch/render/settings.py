"""The ``[email]`` table of dispatch.toml, with its defaults filled in.

Every value has a default, so a site without an ``[email]`` table still
renders; the keys are declared and validated in ``render/options.py``.

``unsubscribe_mailto = "unsubscribe@example.org"`` adds a mailto: form to
every message's ``List-Unsubscribe`` header, after the https one-click URL:
``<mailto:unsubscribe+TOKEN@example.org?subject=unsubscribe>``, where TOKEN
is the signed token of the message's outbox row (``bounces/verp.py``), so
``dispatch bounces process`` unsubscribes whoever writes to it, even when
the mail client drops the subject. Empty (the default): https only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dispatch.config import Settings
from dispatch.errors import Problem, Severity
from dispatch.render.options import aspect
from dispatch.values import urls

# Gmail clips the HTML part at about 102 KB; warn well before it.
WARN_BYTES = 90 * 1024
CLIP_BYTES = 102 * 1024

DEFAULT_DIGEST_SUBJECT = (
    "{{ site.title }}: {{ articles|length }} new article{{ '' if articles|length == 1 else 's' }}"
)


@dataclass(frozen=True, slots=True)
class EmailSettings:
    name_fallback: str = "reader"
    """``recipient.name`` where a subscriber has no name."""
    first_name_fallback: str = "there"
    """``recipient.first_name`` where a subscriber has no name: "Hi there,"."""
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
        """The List-Unsubscribe mailto: URL for one message's row token
        (``local+TOKEN@domain``), if configured."""
        if not self.unsubscribe_mailto:
            return None
        local, _, domain = self.unsubscribe_mailto.rpartition("@")
        return f"mailto:{local}+{token}@{domain}?subject=unsubscribe"

    def list_id_for(self, settings: Settings) -> str:
        if self.list_id:
            return self.list_id
        host = urls.host(settings.site.url)
        return f"{settings.site.title} <newsletter.{host}>"


_STR_KEYS = ("name_fallback", "first_name_fallback", "list_id", "digest_subject",
             "article_subject", "digest_intro", "disclaimer", "why", "image_alt_fallback",
             "unsubscribe_mailto")


def load_email_settings(settings: Settings) -> EmailSettings:
    """``[email]`` (validated in ``render/options.py`` when dispatch.toml was
    read) with every unset value at its default."""
    options = settings.email
    values: dict[str, Any] = {key: getattr(options, key) for key in _STR_KEYS
                              if getattr(options, key) is not None}
    if options.allow_clip is not None:
        values["allow_clip"] = options.allow_clip
    if options.image_aspect is not None:
        values["image_aspect"] = aspect(options.image_aspect)
    if options.utm is not None:
        values["utm"] = tuple((k, v) for k, v in options.utm.items() if v != "")
        values["utm_campaign_from_edition"] = "utm_campaign" not in options.utm
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
