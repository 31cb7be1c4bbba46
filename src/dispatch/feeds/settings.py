"""The ``[feeds]`` table of dispatch.toml, typed and checked.

Every key is optional::

    [feeds]
    out = "public"            # output folder, relative to the site root
    entries = 20              # entries per feed
    url = "https://cdn.example/news"   # public base URL of the feeds (default: site.url)
    icon = "/favicon.png"     # small square image (Atom icon, JSON Feed favicon)
    logo = "/logo.png"        # larger image (Atom logo, RSS image, JSON Feed icon)
    hub = "https://pubsubhubbub.appspot.com/"   # WebSub hub, advertised in every feed
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from dispatch.config import Settings
from dispatch.errors import ConfigError, Problem, Severity

SECTION = "feeds"
KNOWN_KEYS = ("out", "entries", "url", "icon", "logo", "hub")
MAX_ENTRIES = 1000
_ABSOLUTE = re.compile(r"^https?://[^/\s]+\S*$")


@dataclass(frozen=True, slots=True)
class FeedSettings:
    out_dir: Path
    entries: int
    base_url: str
    """Public base URL the feed files are served under, without a trailing slash."""
    icon: str | None
    logo: str | None
    hub: str | None


def _absolute(settings: Settings, value: str) -> str:
    # Icons may be written site-relative ("/logo.png"); feeds need absolute URLs.
    return value if urlsplit(value).scheme else urljoin(settings.site.url + "/", value)


def feed_settings_problems(settings: Settings) -> list[Problem]:
    """Everything wrong with ``[feeds]``; unknown keys are warnings."""
    try:
        load_feed_settings(settings)
    except ConfigError as exc:
        return list(exc.problems)
    return []


def load_feed_settings(settings: Settings) -> FeedSettings:
    raw = settings.section(SECTION)
    problems: list[Problem] = []

    def key(name: str) -> str:
        return f"{SECTION}.{name}"

    def text(name: str) -> str | None:
        value: Any = raw.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            problems.append(settings.problem(key(name), f"{value!r} is not text", "a string"))
            return None
        return value.strip()

    out = text("out") or "public"
    entries: Any = raw.get("entries", 20)
    if isinstance(entries, bool) or not isinstance(entries, int) or not 1 <= entries <= MAX_ENTRIES:
        problems.append(settings.problem(key("entries"), f"{entries!r} is not a usable count",
                                         f"a whole number from 1 to {MAX_ENTRIES}"))
        entries = 20
    base_url = (text("url") or settings.site.url).rstrip("/")
    if not _ABSOLUTE.match(base_url):
        problems.append(settings.problem(key("url"), f"{base_url!r} is not an absolute URL",
                                         "http:// or https:// followed by a host"))
    hub = text("hub")
    if hub is not None and not _ABSOLUTE.match(hub):
        problems.append(settings.problem(key("hub"), f"{hub!r} is not an absolute URL",
                                         "the https:// URL of a WebSub hub"))
    icon, logo = text("icon"), text("logo")
    if problems:
        raise ConfigError(problems)
    return FeedSettings(
        out_dir=settings.root / out,
        entries=entries,
        base_url=base_url,
        icon=_absolute(settings, icon) if icon else None,
        logo=_absolute(settings, logo) if logo else None,
        hub=hub,
    )


def unknown_keys(settings: Settings) -> list[Problem]:
    return [
        Problem("dispatch.toml", f"unknown key {name!r} is ignored", settings.line_of(key),
                key, ", ".join(KNOWN_KEYS), Severity.WARNING)
        for name in settings.section(SECTION)
        if name not in KNOWN_KEYS
        for key in [f"{SECTION}.{name}"]
    ]
