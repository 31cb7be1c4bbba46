"""RSS 2.0, Atom 1.0 and JSON Feed 1.1 for the whole site and per category.

:func:`build_feeds` is the one entry point: it plans the feeds from the
published articles, renders the ones whose input changed and writes only the
files whose bytes changed, atomically.
"""

from dispatch.feeds.build import FeedBuildReport, build_feeds
from dispatch.feeds.settings import FeedSettings, load_feed_settings

__all__ = ["FeedBuildReport", "FeedSettings", "build_feeds", "load_feed_settings"]
