"""The social stage of a pass: queue posts for newly published articles,
then deliver whatever is due (including retries from earlier passes).

Who decides *when* a post is queued: with ``on_publish = "auto"`` (the
default) this stage queues at once only for networks that no ``kind:
social`` schedule in schedules.yaml covers; those schedules (with their
delay and quiet hours) queue the rest. Either way the (slug, network) key
makes the second attempt a no-op.

What is announced at all: each network has a baseline, the first pass in
which it was configured (``social_networks``), and only articles first seen
published *after* it are queued here. The first pass of a fresh install, or
of a network added later, therefore posts nothing from the back catalogue;
``dispatch social SLUG --queue`` announces an older article by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dispatch.errors import Problem
from dispatch.social import queue
from dispatch.social.config import SocialSettings, load_social
from dispatch.social.deliver import deliver, queue_posts, retry_unfit

if TYPE_CHECKING:
    from dispatch.stage import PassContext, SocialSchedules, StageReport

def networks_queued_on_publish(schedules: Callable[[], SocialSchedules], social: SocialSettings
                               ) -> tuple[list[str], list[Problem]]:
    """The networks this stage queues a new article for at once: all, none, or
    (``on_publish = "auto"``) those no social schedule covers, as the pass
    context says (this stage never reads schedules.yaml itself)."""
    names = [n.name for n in social.networks]
    if social.on_publish is True:
        return names, []
    if social.on_publish is False:
        return [], []
    found = schedules()
    if found.networks is None:
        return [], list(found.problems)
    return [name for name in names if name not in found.networks], list(found.problems)


def social_stage(ctx: PassContext) -> StageReport:
    from dispatch.stage import StageReport

    social = load_social(ctx.settings)
    if not social.networks:
        return StageReport("social", "no [social.<network>] configured")
    baselines = queue.remember_networks(ctx.store, [n.name for n in social.networks], ctx.now)
    networks, problems = ([], []) if not ctx.publication.new else (
        networks_queued_on_publish(ctx.social_schedules, social))
    # This pass's new articles were first seen published at ctx.now; a
    # network whose baseline is this very pass has no "after" yet.
    announced = [name for name in networks if baselines[name] < ctx.now]
    held = [name for name in networks if name not in announced]
    queued = 0
    if announced:
        result = queue_posts(ctx.store, ctx.settings, ctx.publication.new, ctx.now,
                             announced, social=social)
        queued = result.queued
        problems.extend(result.problems)
    retried = retry_unfit(ctx.store, social, ctx.published, ctx.now)
    queued += retried.queued
    problems.extend(retried.problems)
    report = deliver(ctx.store, ctx.settings, ctx.now)
    summary = f"queued {queued}"
    if held:
        summary += (f" ({', '.join(held)}: first pass, {len(ctx.publication.new)} "
                    "already published (recorded, not announced); "
                    "`dispatch social SLUG --queue` posts one by hand)")
    summary += f", {report.summary}"
    return StageReport("social", summary, tuple(problems) + report.problems,
                       failed=report.failed > 0)
