"""RSS 2.0, Atom 1.0 and JSON Feed 1.1 for the whole site and per category.

:func:`build_feeds` plans the feeds from the published articles, renders the
ones whose input changed and writes only the files whose bytes changed,
atomically. :func:`update_feeds` gets to the same files after a few articles
changed without planning every feed again (the pipeline's way).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from dispatch.config import Settings
from dispatch.feeds.report import FeedBuildReport
from dispatch.feeds.settings import FeedSettings, load_feed_settings
from dispatch.models import Article

__all__ = ["FeedBuildReport", "FeedSettings", "build_feeds", "load_feed_settings",
           "update_feeds"]


def build_feeds(settings: Settings, articles: Sequence[Article], now: datetime,
                out_dir: Path | None = None) -> FeedBuildReport:
    """Write the site-wide and per-category feeds for what is published at ``now``.

    ``articles`` may include drafts and future articles; they are left out.
    Only files whose bytes change are written, each atomically. ``out_dir``
    defaults to ``[feeds] out`` (``public/``). Raises
    :class:`~dispatch.errors.ConfigError` for a bad ``[feeds]`` table.
    """
    # Imported on use so that importing dispatch.feeds (e.g. for `dispatch
    # check`) never loads feedgen and lxml.
    from dispatch.feeds.build import build_feeds as build

    return build(settings, articles, now, out_dir)


def update_feeds(settings: Settings, articles: Sequence[Article],
                 by_slug: Mapping[str, Article],
                 changed_since: Callable[[datetime], Collection[str]],
                 now: datetime, out_dir: Path | None = None) -> FeedBuildReport:
    """What :func:`build_feeds` would write, rendering only the feeds that the
    articles ``changed_since`` the last build can touch (see
    :func:`dispatch.feeds.build.update_feeds`)."""
    from dispatch.feeds.build import update_feeds as update

    return update(settings, articles, by_slug, changed_since, now, out_dir)
