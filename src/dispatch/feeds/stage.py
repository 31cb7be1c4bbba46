"""The feeds stage of a pipeline pass.

Every pass asks :func:`~dispatch.feeds.build.update_feeds` to bring the feeds
up to date: the store says which articles were published or changed since the
last build, and only the feeds those touch are rendered. A pass with nothing
new or changed writes nothing, and an article deleted or turned back into a
draft still leaves its feeds (the manifest notices its entry is gone), and one
that comes back returns (the store marks it withdrawn meanwhile). Missing or
hand-edited feed files, or a fresh output folder, get a full build.
"""

from __future__ import annotations

from datetime import datetime

from dispatch.feeds.build import build_feeds, update_feeds
from dispatch.feeds.formats import file_name
from dispatch.feeds.settings import load_feed_settings
from dispatch.stage import PassContext, StageReport
from dispatch.store.articles import changed_since

STAGE = "feeds"


def feeds_stage(ctx: PassContext) -> StageReport:
    config = load_feed_settings(ctx.settings)
    if not (config.out_dir / file_name("rss")).exists():
        report = build_feeds(ctx.settings, ctx.load.articles, ctx.now, config.out_dir)
    else:
        def since(moment: datetime) -> set[str]:
            return changed_since(ctx.store, moment)

        report = update_feeds(ctx.settings, ctx.load.articles, ctx.load.by_slug, since,
                              ctx.now, config.out_dir)
    if not (report.written or report.removed):
        return StageReport(STAGE, "no new or changed article; feeds left as they are")
    return StageReport(STAGE, report.summary)
