"""The ``[feeds]`` table of dispatch.toml, with its defaults filled in.

The keys are declared and validated in ``feeds/options.py``.

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

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from dispatch.config import Settings
from dispatch.errors import ConfigError, Problem
from dispatch.feeds.options import MAX_ENTRIES as MAX_ENTRIES
from dispatch.values import urls

SECTION = "feeds"


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
    """Everything wrong with ``[feeds]`` that its model could not see alone."""
    try:
        load_feed_settings(settings)
    except ConfigError as exc:
        return list(exc.problems)
    return []


def load_feed_settings(settings: Settings) -> FeedSettings:
    """``[feeds]`` (already validated when dispatch.toml was read) with its
    defaults filled in from ``[site]``."""
    options = settings.feeds
    base_url = (options.url or settings.site.url).rstrip("/")
    if not urls.is_absolute(base_url):
        raise ConfigError([settings.problem(f"{SECTION}.url", f"{base_url!r} is not an "
                                            "absolute URL",
                                            "http:// or https:// followed by a host")])
    return FeedSettings(
        out_dir=settings.root / options.out,
        entries=options.entries,
        base_url=base_url,
        icon=_absolute(settings, options.icon) if options.icon else None,
        logo=_absolute(settings, options.logo) if options.logo else None,
        hub=options.hub,
    )
