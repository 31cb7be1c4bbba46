"""When a schedule fires: pure functions of time over APScheduler triggers.

We use APScheduler's triggers (``get_next_fire_time``) for the calendar maths
but decide ourselves what counts as a firing, because two of its 3.x
behaviours would send mail twice or on the wrong day:

* ``CronTrigger.from_crontab`` numbers weekdays from Monday = 0, unlike every
  crontab. :func:`normalise_cron` rewrites numeric weekdays (crontab meaning:
  0 and 7 are Sunday) as names, which APScheduler reads correctly.
* On the DST fall-back night a daily 01:30 job fires at both 01:30s. We keep
  the first and drop the repeat (:func:`_is_repeat`): "01:30" happens once.

A wall-clock time that does not exist (the spring-forward gap) fires as
APScheduler computes it: the same number of minutes after the gap starts, so
02:30 in America/New_York on 8 March 2026 fires at 03:30 EDT (07:30 UTC).
Every datetime returned here is aware and in UTC.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from dispatch.schedule.model import At, Cron, Every, OnPublish, Schedule, Trigger

WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
CRON_EXPECTED = ("five fields: minute hour day-of-month month weekday, "
                 "e.g. \"0 8 * * mon\"; weekday names mon tue wed thu fri sat sun")
# Anchor for ``every``: intervals count from this local midnight, so
# "every 6h" fires at 00:00, 06:00, 12:00, 18:00 (elapsed time, not wall time).
EVERY_ANCHOR = datetime(2000, 1, 3)
_MAX_FIRINGS = 50_000
_TINY = timedelta(microseconds=1)


def _weekday_numbers(field: str) -> set[int]:
    """Crontab numeric weekdays (0–7, Sunday = 0 or 7) as a set of 0–6."""
    days: set[int] = set()
    for item in field.split(","):
        part, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"step {step_text} must be at least 1")
        if part == "*":
            low, high = 0, 6
        elif "-" in part:
            a, b = part.split("-", 1)
            low, high = int(a), int(b)
        else:
            low = int(part)
            high = 6 if step_text else low
        if not (0 <= low <= 7 and 0 <= high <= 7) or low > high:
            raise ValueError(f"weekday {part!r} is out of range 0-7")
        days.update(d % 7 for d in range(low, high + 1, step))
    return days


def normalise_cron(expression: str) -> str:
    """Check five fields and rewrite a numeric weekday field as names.

    Raises ValueError when the expression cannot be a crontab line.
    """
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"has {len(fields)} field(s)")
    weekday = fields[4].lower()
    if re.fullmatch(r"[0-9*,/-]+", weekday) and weekday != "*":
        try:
            days = _weekday_numbers(weekday)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        # Monday first so that APScheduler sees an ordinary list of names.
        ordered = [d for d in (1, 2, 3, 4, 5, 6, 0) if d in days]
        weekday = ",".join(WEEKDAYS[d] for d in ordered)
    fields[4] = weekday
    normalised = " ".join(fields)
    CronTrigger.from_crontab(normalised, timezone=ZoneInfo("UTC"))  # raises ValueError
    return normalised


@functools.lru_cache(maxsize=1024)
def make_trigger(trigger: Trigger, tz: ZoneInfo) -> BaseTrigger | None:
    """The APScheduler trigger for a timed schedule; None for on-publish.

    Cached: parsing a crontab line costs more than walking it, and every
    tick asks again. Triggers hold no state between calls, so sharing is safe.
    """
    if isinstance(trigger, Cron):
        return CronTrigger.from_crontab(trigger.normalised, timezone=tz)
    if isinstance(trigger, Every):
        return IntervalTrigger(seconds=int(trigger.interval.total_seconds()),
                               start_date=EVERY_ANCHOR.replace(tzinfo=tz), timezone=tz)
    if isinstance(trigger, At):
        return DateTrigger(run_date=trigger.when, timezone=tz)
    assert isinstance(trigger, OnPublish)
    return None


def _is_repeat(fire: datetime, tz: ZoneInfo) -> bool:
    """True for the second occurrence of an ambiguous local time (DST fall-back)."""
    local = fire.astimezone(tz)
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


def due_firings(schedule: Schedule, since: datetime, until: datetime) -> list[datetime]:
    """Firing times in ``(since, until]``, oldest first, in UTC.

    Pure: the same arguments always give the same answer. On-publish
    schedules have no calendar firings (see ``engine.publish_firings``).
    """
    trigger = make_trigger(schedule.trigger, schedule.tz)
    if trigger is None or until <= since:
        return []
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    wall_clock = isinstance(schedule.trigger, Cron)
    out: list[datetime] = []
    # All arithmetic in UTC: adding a timedelta to a zone-aware datetime is
    # wall-clock arithmetic and drops ``fold``, which steps *back* an hour
    # from the second 01:30 of a fall-back night and loops there.
    fire = trigger.get_next_fire_time(None, since + _TINY)
    while fire is not None and fire <= until and len(out) < _MAX_FIRINGS:
        if fire > since and not (wall_clock and _is_repeat(fire, schedule.tz)):
            out.append(fire.astimezone(UTC))
        nxt = trigger.get_next_fire_time(fire, fire.astimezone(UTC) + _TINY)
        # Compare in UTC too: two datetimes sharing one tzinfo compare by wall
        # clock, ignoring ``fold``, so the two 01:30s would look equal.
        if nxt is not None and nxt.astimezone(UTC) <= fire.astimezone(UTC):
            break  # a DateTrigger answers its one date again
        fire = nxt
    return out


def next_firings(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` firings strictly after ``after`` (UTC)."""
    out: list[datetime] = []
    horizon = after
    span = timedelta(days=8)
    # Widen the window until enough firings are found; a yearly cron needs
    # a few rounds, a one-off date in the past never yields any.
    for _ in range(12):
        out = due_firings(schedule, after, horizon + span)
        if len(out) >= count:
            return out[:count]
        span *= 3
    return out[:count]
