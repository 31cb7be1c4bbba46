"""Crontab lines: what crontab(5) says they mean, read and walked in a time zone.

Parsing (:func:`parse_cron`) accepts what crontab(5) and croniter accept:
five fields, numbers, names (``mon``, ``jan``), ranges that may wrap around
(``fri-mon``), steps, lists, ``?`` for "any" in the day fields, ``last`` (or
``L``) as the last day of the month, ``mon#1`` for "the first Monday" and the
``@daily``-style aliases. Anything else raises :class:`CronError` naming the
field and what it found.

Walking (:func:`cron_firings`) is our own, on :mod:`zoneinfo`: for each local
date that matches, each matching wall-clock time is turned into an instant
with these summer-time rules, the same for every zone:

* a fixed time (the hour field is a number, list or range) that happens
  twice on the autumn night fires once, the first time;
* a fixed time that does not exist on the spring night fires once, at the
  moment of the change;
* when the hour field is ``*`` or a step (``0 * * * *``, ``*/15 * * * *``)
  the line is about the passing of real time, so every real occurrence of a
  matching clock time fires: 25 hourly firings on the autumn day, 23 on the
  spring day.

We do not use croniter here because the property test compares against it:
an oracle cannot also be the implementation. And APScheduler 3.11's
``CronTrigger`` adds wall-clock differences as elapsed time, which skips the
day after a spring change (a daily 00:00 in New York never fires on
2027-03-15).
"""

from __future__ import annotations

import calendar
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


class CronError(ValueError):
    """A crontab line that cannot be read; the message is meant for staff."""


ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
               "dec")
CRON_EXPECTED = ("five fields: minute hour day-of-month month weekday, e.g. \"0 8 * * mon\", "
                 "or @hourly, @daily, @weekly, @monthly, @yearly")


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    name_base: int = 0


_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DAY = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, MONTH_NAMES, 1)
# 7 is Sunday as well as 0, as in crontab(5). In every field a range may
# wrap around (fri-mon, nov-feb, 22-2), as croniter reads it.
_WEEKDAY = _Field("weekday", 0, 7, WEEKDAY_NAMES, 0)


@dataclass(frozen=True, slots=True)
class CronSpec:
    """A parsed crontab line. Weekdays are 0–6 with Sunday = 0."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    last_day: bool
    months: frozenset[int]
    weekdays: frozenset[int]
    nth: frozenset[tuple[int, int]]
    """(weekday, n) pairs from ``mon#1``: the n-th such weekday of the month."""
    day_star: bool
    weekday_star: bool
    every_hour: bool
    """Hour field ``*`` or a step: fire at every real occurrence (see module doc)."""

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days or (
            self.last_day and day.day == calendar.monthrange(day.year, day.month)[1])
        weekday = (day.weekday() + 1) % 7
        dow = weekday in self.weekdays or (weekday, (day.day - 1) // 7 + 1) in self.nth
        # crontab(5): when both day fields are restricted, either may match;
        # a field starting with "*" (or "?") leaves the other one in charge.
        if self.day_star or self.weekday_star:
            return dom and dow
        return dom or dow


def _number(text: str, f: _Field) -> int:
    lowered = text.lower()
    if lowered in f.names:
        return f.names.index(lowered) + f.name_base
    if not text.isdigit():
        if f.names:
            raise CronError(f"{f.name} field: \"{text}\" is neither a number {f.low}-{f.high} "
                            f"nor a name ({' '.join(f.names)})")
        raise CronError(f"{f.name} field: \"{text}\" is not a number {f.low}-{f.high}")
    value = int(text)
    if not f.low <= value <= f.high:
        raise CronError(f"{f.name} field: {value} is out of range {f.low}-{f.high}")
    return value


def _span(low: int, high: int, step: int, f: _Field) -> list[int]:
    if low <= high:
        return list(range(low, high + 1, step))
    # fri-mon: Friday to Saturday, then on from the bottom of the range.
    top = 6 if f is _WEEKDAY else f.high
    bottom = 0 if f is _WEEKDAY else f.low
    values = list(range(low, top + 1)) + list(range(bottom, high + 1))
    return values[::step]


def _field(text: str, f: _Field) -> tuple[set[int], bool]:
    """The values a field allows, and whether it starts with ``*`` (or is ``?``)."""
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CronError(f"{f.name} field \"{text}\" has an empty item")
        part, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise CronError(f"{f.name} field: step \"{step_text}\" is not a whole "
                                "number of at least 1")
            step = int(step_text)
        if part in ("*", "?"):
            if part == "?" and f not in (_DAY, _WEEKDAY):
                raise CronError(f"{f.name} field: \"?\" only means \"any\" in the day-of-month "
                                "and weekday fields")
            low, high = f.low, (6 if f is _WEEKDAY else f.high)
        elif "-" in part:
            a, b = part.split("-", 1)
            low, high = _number(a, f), _number(b, f)
        else:
            low = _number(part, f)
            high = (6 if f is _WEEKDAY else f.high) if slash else low
        values.update(_span(low, high, step, f))
    if f is _WEEKDAY:
        values = {v % 7 for v in values}
    return values, text.startswith(("*", "?"))


def _weekday_field(text: str) -> tuple[set[int], set[tuple[int, int]], bool]:
    plain, nth = [], set()
    for item in text.split(","):
        if "#" in item:
            day_text, _, n_text = item.partition("#")
            day = _number(day_text, _WEEKDAY) % 7
            if not n_text.isdigit() or not 1 <= int(n_text) <= 5:
                raise CronError(f"weekday field: \"{item}\" needs a week number 1-5 after #, "
                                "e.g. mon#1 for the first Monday")
            nth.add((day, int(n_text)))
        else:
            plain.append(item)
    values, star = _field(",".join(plain), _WEEKDAY) if plain else (set(), False)
    return values, nth, star


def _day_field(text: str) -> tuple[set[int], bool, bool]:
    items = text.split(",")
    last = any(i.lower() in ("l", "last") for i in items)
    rest = [i for i in items if i.lower() not in ("l", "last")]
    values, star = _field(",".join(rest), _DAY) if rest else (set(), False)
    return values, last, star


@functools.lru_cache(maxsize=1024)
def parse_cron(expression: str) -> CronSpec:
    """Read one crontab line; :class:`CronError` says which field is wrong and why."""
    text = expression.strip()
    if text.startswith("@"):
        alias = text.lower()
        if alias == "@reboot":
            raise CronError("@reboot has no time of day: schedules fire on the clock, not "
                            "when the machine starts")
        if alias not in ALIASES:
            raise CronError(f"\"{text}\" is not a known alias (@hourly, @daily, @midnight, "
                            "@weekly, @monthly, @yearly, @annually)")
        text = ALIASES[alias]
    fields = text.split()
    if len(fields) == 6:
        raise CronError("6 fields: a seconds field is not supported")
    if len(fields) == 7:
        raise CronError("7 fields: seconds and year fields are not supported")
    if len(fields) != 5:
        raise CronError(f"{len(fields)} field(s) found, 5 needed")
    minute, hour, day, month, weekday = fields
    minutes, _ = _field(minute, _MINUTE)
    hours, hour_star = _field(hour, _HOUR)
    days, last, day_star = _day_field(day)
    months, _ = _field(month, _MONTH)
    weekdays, nth, weekday_star = _weekday_field(weekday)
    return CronSpec(tuple(sorted(minutes)), tuple(sorted(hours)), frozenset(days), last,
                    frozenset(months), frozenset(weekdays), frozenset(nth), day_star,
                    weekday_star, hour_star or "/" in hour)


def restricts_both_days(spec: CronSpec) -> bool:
    """Both day fields restricted: crontab fires on days matching either."""
    return not spec.day_star and not spec.weekday_star


def _gap_end(wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant the clocks jumped over ``wall`` (a time that does not exist)."""
    # zoneinfo reads a missing time with the offset before the change
    # (fold=0) or after it (fold=1); the change lies between the two.
    early = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    late = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    reference = early.astimezone(tz).utcoffset()
    while late - early > timedelta(seconds=1):
        middle = early + (late - early) / 2
        if middle.astimezone(tz).utcoffset() == reference:
            early = middle
        else:
            late = middle
    return late.replace(microsecond=0)


def instants(wall: datetime, tz: ZoneInfo, every_hour: bool) -> list[datetime]:
    """The UTC instants a local wall-clock time fires at, by the rules above."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    if first < second:  # the autumn repeat
        return [first, second] if every_hour else [first]
    return [] if every_hour else [_gap_end(wall, tz)]  # the spring gap


_SLACK = timedelta(hours=3)  # more than any zone's offset change


def _days(start: date, end: date) -> Iterator[date]:
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


def cron_firings(spec: CronSpec, tz: ZoneInfo, since: datetime,
                 until: datetime) -> list[datetime]:
    """Firing instants in ``(since, until]``, oldest first, in UTC."""
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    if until <= since:
        return []
    # Walk local wall-clock times a little beyond the window on both sides
    # (offsets move), then keep the instants that fall inside it.
    low = since.astimezone(tz).replace(tzinfo=None) - _SLACK
    high = until.astimezone(tz).replace(tzinfo=None) + _SLACK
    found: set[datetime] = set()
    for day in _days(low.date(), high.date()):
        if not spec.day_matches(day):
            continue
        for hour in spec.hours:
            start = datetime.combine(day, time(hour))
            if start + timedelta(hours=1) <= low or start > high:
                continue
            for minute in spec.minutes:
                for instant in instants(start.replace(minute=minute), tz, spec.every_hour):
                    if since < instant <= until:
                        found.add(instant)
    return sorted(found)


def next_cron_firing(spec: CronSpec, tz: ZoneInfo, after: datetime,
                     horizon_years: int = 28) -> datetime | None:
    """The first firing strictly after ``after``, looking ahead in growing steps.

    28 years is a whole cycle of weekdays over dates (inside one century), so
    a line that has not fired by then never will (``0 0 30 2 *``).
    """
    span = timedelta(days=2)
    limit = after + timedelta(days=366 * horizon_years)
    start = after
    while start < limit:
        end = min(start + span, limit)
        found = cron_firings(spec, tz, start, end)
        if found:
            return found[0]
        start, span = end, span * 4
    return None
