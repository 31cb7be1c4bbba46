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

from typing import TYPE_CHECKING

from dispatch.config import Settings
from dispatch.errors import Problem, Severity
from dispatch.social import queue
from dispatch.social.config import SocialSettings, load_social
from dispatch.social.deliver import deliver, queue_posts, retry_unfit

if TYPE_CHECKING:
    from dispatch.pipeline import PassContext, StageReport

SCHEDULES_FILE = "schedules.yaml"


def scheduled_networks(settings: Settings) -> tuple[set[str] | None, list[Problem]]:
    """Networks some social schedule queues posts for (None: all).

    A paused schedule (``enabled: false``) still covers its networks: paused
    means nothing goes out, not "post at once instead". While the file has
    errors the scheduler runs its last good version, so that is the one
    that decides; with no good version at all, nothing is posted at once.
    """
    path = settings.root / SCHEDULES_FILE
    if not path.exists():
        return set(), []
    from dispatch.schedule.sitefile import last_good_path
    from dispatch.schedule.spec import parse_schedules

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = "schedules: ["  # unreadable: treated like a broken file below
    schedules, problems = parse_schedules(text, settings.site.timezone)
    if any(p.is_error for p in problems):
        try:
            previous = last_good_path(settings).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            previous = None
        if previous is not None:
            schedules, problems = parse_schedules(previous, settings.site.timezone)
        if previous is None or any(p.is_error for p in problems):
            # A social schedule with a typo must not turn into "post at
            # once, ignoring the delay and quiet hours": hold off and say so.
            return None, [Problem(SCHEDULES_FILE, "has errors, so social posts for new "
                                  "articles are left to the scheduler", None,
                                  "social.on_publish", "a valid schedules.yaml",
                                  Severity.WARNING)]
    covered: set[str] = set()
    for schedule in schedules.schedules:
        if schedule.kind == "social":
            if schedule.networks is None:
                return None, []
            covered.update(schedule.networks)
    return covered, []


def networks_queued_on_publish(settings: Settings, social: SocialSettings
                               ) -> tuple[list[str], list[Problem]]:
    names = [n.name for n in social.networks]
    if social.on_publish is True:
        return names, []
    if social.on_publish is False:
        return [], []
    covered, problems = scheduled_networks(settings)
    if covered is None:
        return [], problems
    return [name for name in names if name not in covered], problems


def social_stage(ctx: PassContext) -> StageReport:
    from dispatch.pipeline import StageReport

    social = load_social(ctx.settings)
    if not social.networks:
        return StageReport("social", "no [social.<network>] configured")
    baselines = queue.remember_networks(ctx.store, [n.name for n in social.networks], ctx.now)
    networks, problems = ([], []) if not ctx.publication.new else (
        networks_queued_on_publish(ctx.settings, social))
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
