"""The validated, frozen form of a schedule: what every other module sees.

``spec.py`` turns ``schedules.yaml`` into these; nothing downstream ever
looks at raw YAML or pydantic models again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Kind = Literal["digest", "article", "social", "feeds"]
KINDS: tuple[Kind, ...] = ("digest", "article", "social", "feeds")
EMAIL_KINDS: frozenset[str] = frozenset({"digest", "article"})

DEFAULT_MAX_LATENESS = timedelta(hours=6)
MIN_EVERY = timedelta(minutes=5)

_DURATION = re.compile(r"^\s*(?:(\d+)\s*w)?\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?"
                       r"\s*(?:(\d+)\s*s)?\s*$", re.IGNORECASE)
DURATION_EXPECTED = "a duration such as 30m, 2h, 1d or 1h30m"


MAX_DURATION = timedelta(days=366)
"""Longer than any sensible delay or interval; also keeps ``fire + delay``
far from datetime's year-9999 limit."""


def parse_duration(text: str) -> timedelta:
    """``2h`` → 2 hours; ``0`` → no time. Raises ValueError with a message meant for staff."""
    value = text.strip()
    if value.startswith("-"):
        raise ValueError(f"\"{text}\" is negative; a duration cannot be")
    if value == "0":
        return timedelta(0)
    match = _DURATION.match(value)
    if not value or not match or not any(match.groups()):
        raise ValueError(f"\"{text}\" is not a duration")
    weeks, days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    try:
        delta = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        delta = timedelta.max
    if delta > MAX_DURATION:
        raise ValueError(f"\"{text}\" is out of range (at most {format_duration(MAX_DURATION)})")
    return delta


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window, in the schedule's timezone, in which nothing starts sending.

    ``start > end`` means the window crosses midnight (21:00–07:00).
    """

    start: time
    end: time

    def contains(self, local: datetime) -> bool:
        t = local.time().replace(tzinfo=None)
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def release(self, instant: datetime, tz: ZoneInfo) -> datetime:
        """The first instant at or after ``instant`` outside the window."""
        local = instant.astimezone(tz)
        if not self.contains(local):
            return instant
        day = local.date()
        if self.start > self.end and local.time().replace(tzinfo=None) >= self.start:
            day = day + timedelta(days=1)
        # An end time that falls in a DST gap resolves with the pre-gap
        # offset, i.e. one hour later on the wall clock: never earlier.
        end = datetime.combine(day, self.end, tzinfo=tz)
        return end.astimezone(instant.tzinfo)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True, slots=True)
class Cron:
    expression: str
    """Exactly as written (for display)."""
    normalised: str
    """The stored key text (numeric weekdays as names; see ``triggers.normalise_cron``)."""

    def __str__(self) -> str:
        return f"cron {self.expression}"


@dataclass(frozen=True, slots=True)
class At:
    when: datetime

    def __str__(self) -> str:
        return f"at {self.when:%Y-%m-%d %H:%M}"


@dataclass(frozen=True, slots=True)
class Every:
    interval: timedelta

    def __str__(self) -> str:
        return f"every {format_duration(self.interval)}"


@dataclass(frozen=True, slots=True)
class OnPublish:
    delay: timedelta = timedelta(0)

    def __str__(self) -> str:
        return "on publish" + (f" + {format_duration(self.delay)}" if self.delay else "")


Trigger = Cron | At | Every | OnPublish


@dataclass(frozen=True)
class Schedule:
    id: str
    kind: Kind
    trigger: Trigger
    tz: ZoneInfo
    audience: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    max_articles: int | None = None
    min_articles: int = 1
    subject: str | None = None
    intro: str | None = None
    template: str | None = None
    networks: tuple[str, ...] | None = None
    enabled: bool = True
    max_lateness: timedelta = DEFAULT_MAX_LATENESS
    quiet_hours: QuietHours | None = None
    starts: datetime | None = None
    """Where the first window of articles begins (``starts:``); firings
    before it are not made."""
    line: int | None = field(default=None, compare=False)
    index: int = field(default=0, compare=False)
    """Position in the file's ``schedules`` list (for ``schedules[2].cron``)."""
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, hash=False)
    """Line of each key as written, for checks made after parsing."""

    @property
    def on_publish(self) -> bool:
        return isinstance(self.trigger, OnPublish)

    @property
    def sends(self) -> bool:
        """Quiet hours hold back what reaches people; feeds are not held back."""
        return self.kind != "feeds"


@dataclass(frozen=True)
class ScheduleSet:
    """Every valid schedule of one ``schedules.yaml``, in file order."""

    schedules: tuple[Schedule, ...] = ()
    timezone: str = "UTC"
    fingerprint: str = ""
    """Hash of the file text; hot reload compares it."""

    def get(self, schedule_id: str) -> Schedule | None:
        return next((s for s in self.schedules if s.id == schedule_id), None)
