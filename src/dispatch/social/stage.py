"""The social stage of a pass: queue posts for newly published articles,
then deliver whatever is due (including retries from earlier passes).

Who decides *when* a post is queued: with ``on_publish = "auto"`` (the
default) this stage queues at once only for networks that no ``kind:
social`` schedule in schedules.yaml covers; those schedules (with their
delay and quiet hours) queue the rest. Either way the (slug, network) key
makes the second attempt a no-op.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dispatch.config import Settings
from dispatch.errors import Problem, Severity
from dispatch.social.config import SocialSettings, load_social
from dispatch.social.deliver import deliver, queue_posts

if TYPE_CHECKING:
    from dispatch.pipeline import PassContext, StageReport

SCHEDULES_FILE = "schedules.yaml"


def scheduled_networks(settings: Settings) -> tuple[set[str] | None, list[Problem]]:
    """Networks some enabled social schedule queues posts for (None: all)."""
    path = settings.root / SCHEDULES_FILE
    if not path.exists():
        return set(), []
    from dispatch.schedule.spec import parse_schedules

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = "schedules: ["  # unreadable: treated like a broken file below
    schedules, problems = parse_schedules(text, settings.site.timezone)
    if any(p.is_error for p in problems):
        # A social schedule with a typo must not turn into "post at once,
        # ignoring the delay and quiet hours": hold off and say so.
        return None, [Problem(SCHEDULES_FILE, "has errors, so social posts for new articles "
                              "are left to the scheduler", None, "social.on_publish",
                              "a valid schedules.yaml", Severity.WARNING)]
    covered: set[str] = set()
    for schedule in schedules.schedules:
        if schedule.kind == "social" and schedule.enabled:
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
    networks, problems = ([], []) if not ctx.publication.new else (
        networks_queued_on_publish(ctx.settings, social))
    queued = 0
    if networks:
        queued, found = queue_posts(ctx.store, ctx.settings, ctx.publication.new, ctx.now,
                                    networks, social=social)
        problems.extend(found)
    report = deliver(ctx.store, ctx.settings, ctx.now)
    summary = f"queued {queued}, {report.summary}"
    return StageReport("social", summary, tuple(problems) + report.problems,
                       failed=report.failed > 0)
