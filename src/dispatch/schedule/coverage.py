"""Which social networks the site's schedules queue posts for.

The social stage queues a new article at once only for networks that no
``kind: social`` schedule covers (``on_publish = "auto"``); it learns which
through the pass context, filled in by whoever runs the pass (the scheduler,
``dispatch run``) with :func:`social_schedules`, so the stage never reads
schedules.yaml itself.
"""

from __future__ import annotations

from dispatch.config import Settings
from dispatch.errors import Problem, Severity
from dispatch.schedule.sitefile import last_good_path
from dispatch.schedule.spec import parse_schedules
from dispatch.stage import SocialSchedules

SCHEDULES_FILE = "schedules.yaml"


def social_schedules(settings: Settings) -> SocialSchedules:
    """Networks some social schedule queues posts for (None: all).

    A paused schedule (``enabled: false``) still covers its networks: paused
    means nothing goes out, not "post at once instead". While the file has
    errors the scheduler runs its last good version, so that is the one
    that decides; with no good version at all, nothing is posted at once.
    """
    path = settings.root / SCHEDULES_FILE
    if not path.exists():
        return SocialSchedules(frozenset())
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
            return SocialSchedules(None, (Problem(
                SCHEDULES_FILE, "has errors, so social posts for new articles are left to "
                "the scheduler", None, "social.on_publish", "a valid schedules.yaml",
                Severity.WARNING),))
    covered: set[str] = set()
    for schedule in schedules.schedules:
        if schedule.kind == "social":
            if schedule.networks is None:
                return SocialSchedules(None)
            covered.update(schedule.networks)
    return SocialSchedules(frozenset(covered))
