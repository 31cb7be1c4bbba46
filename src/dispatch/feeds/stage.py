"""The feeds stage of a pipeline pass.

Feeds are rebuilt when the pass found an article newly published or an
already-published one changed — and, so a fresh checkout or a wiped output
folder heals itself, when the site-wide feed file is missing. Otherwise the
stage does nothing at all (it does not even plan feeds).
"""

from __future__ import annotations

from dispatch.feeds.build import build_feeds
from dispatch.feeds.model import FILE_NAMES
from dispatch.feeds.settings import load_feed_settings
from dispatch.pipeline import PassContext, StageReport

STAGE = "feeds"


def feeds_stage(ctx: PassContext) -> StageReport:
    config = load_feed_settings(ctx.settings)
    publication = ctx.publication
    missing = not (config.out_dir / FILE_NAMES["rss"]).exists() and bool(ctx.published)
    if not (publication.new or publication.changed or missing):
        return StageReport(STAGE, "no new or changed article; feeds left as they are")
    report = build_feeds(ctx.settings, ctx.load.articles, ctx.now, config.out_dir)
    return StageReport(STAGE, report.summary)
