"""When a schedule fires: pure functions of time.

Cron lines are walked by our own wall-clock algorithm (``cron.py``, with the
summer-time rules stated there); ``every`` counts elapsed time from a fixed
local midnight; ``at`` is one instant. APScheduler does none of this maths
any more: it only wakes the process at the next instant computed here
(:class:`dispatch.schedule.runner.NextFiring`), because its 3.11
``CronTrigger`` loses the day after a spring change. Every datetime returned
here is aware and in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from dispatch.schedule.cron import CRON_EXPECTED, cron_firings, next_cron_firing, parse_cron
from dispatch.schedule.model import At, Cron, Every, Schedule

__all__ = ["CRON_EXPECTED", "due_firings", "next_firing", "next_firings",
           "normalise_cron"]

WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# Anchor for ``every``: intervals count from this local midnight, so
# "every 6h" fires at 00:00, 06:00, 12:00, 18:00 (elapsed time, not wall time).
EVERY_ANCHOR = datetime(2000, 1, 3)
_MAX_FIRINGS = 50_000


def normalise_cron(expression: str) -> str:
    """Check a crontab line (:class:`~dispatch.schedule.cron.CronError`, a
    ValueError, says what is wrong) and return its stored key text.

    The key is the line with a purely numeric weekday field written as names
    (``1-5`` -> ``mon,tue,wed,thu,fri``), as earlier versions stored it: the
    scheduler compares this key to notice an edited trigger, and a key that
    changed on upgrade would reset every schedule's start and drop the
    firings due during the deploy.
    """
    spec = parse_cron(expression)
    fields = expression.split()
    if len(fields) == 5 and fields[4] != "*" and all(c in "0123456789*,/-" for c in fields[4]):
        ordered = [d for d in (1, 2, 3, 4, 5, 6, 0) if d in spec.weekdays]
        fields[4] = ",".join(WEEKDAYS[d] for d in ordered)
        return " ".join(fields)
    return " ".join(f.lower() if i == 4 else f for i, f in enumerate(fields))


def _every_firings(every: Every, tz: tzinfo, since: datetime, until: datetime) -> list[datetime]:
    anchor = EVERY_ANCHOR.replace(tzinfo=tz).astimezone(UTC)
    step = every.interval
    # The first multiple of the interval strictly after ``since``.
    count = (since - anchor) // step + 1
    out: list[datetime] = []
    fire = anchor + step * count
    while fire <= until and len(out) < _MAX_FIRINGS:
        out.append(fire)
        fire += step
    return out


def due_firings(schedule: Schedule, since: datetime, until: datetime) -> list[datetime]:
    """Firing times in ``(since, until]``, oldest first, in UTC.

    Pure: the same arguments always give the same answer, and splitting a
    window never adds or loses a firing. On-publish schedules have no
    calendar firings (see ``engine.publish_firings``).
    """
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    if until <= since:
        return []
    trigger = schedule.trigger
    if isinstance(trigger, Cron):
        return cron_firings(parse_cron(trigger.expression), schedule.tz, since,
                            until)[:_MAX_FIRINGS]
    if isinstance(trigger, Every):
        return _every_firings(trigger, schedule.tz, since, until)
    if isinstance(trigger, At):
        when = trigger.when.astimezone(UTC)
        return [when] if since < when <= until else []
    return []


def next_firing(schedule: Schedule, after: datetime) -> datetime | None:
    """The first firing strictly after ``after``; None if there is none."""
    after = after.astimezone(UTC)
    trigger = schedule.trigger
    if isinstance(trigger, Cron):
        return next_cron_firing(parse_cron(trigger.expression), schedule.tz, after)
    if isinstance(trigger, Every):
        found = _every_firings(trigger, schedule.tz, after, after + trigger.interval)
        return found[0] if found else None
    if isinstance(trigger, At):
        when = trigger.when.astimezone(UTC)
        return when if when > after else None
    return None


def next_firings(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` firings strictly after ``after`` (UTC)."""
    out: list[datetime] = []
    fire = next_firing(schedule, after)
    while fire is not None and len(out) < count:
        out.append(fire)
        fire = next_firing(schedule, fire)
    return out
