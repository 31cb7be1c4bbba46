"""The social stage of a pass: queue posts for newly published articles,
then deliver whatever is due (including retries from earlier passes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dispatch.errors import Problem
from dispatch.social.config import load_social
from dispatch.social.deliver import deliver, queue_posts

if TYPE_CHECKING:
    from dispatch.pipeline import PassContext, StageReport


def social_stage(ctx: PassContext) -> StageReport:
    from dispatch.pipeline import StageReport

    social = load_social(ctx.settings)
    if not social.networks:
        return StageReport("social", "no [social.<network>] configured")
    queued, problems = 0, list[Problem]()
    if social.on_publish:
        queued, problems = queue_posts(ctx.store, ctx.settings, ctx.publication.new, ctx.now,
                                       social=social)
    report = deliver(ctx.store, ctx.settings, ctx.now)
    summary = f"queued {queued}, {report.summary}"
    return StageReport("social", summary, tuple(problems) + report.problems,
                       failed=report.failed > 0)
