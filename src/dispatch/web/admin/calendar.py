"""The staff calendar: planned firings (from the one planner ``dispatch plan``
uses) and recorded past firings, laid out as a month grid or a week of hours.

Nothing here decides anything: each entry is a
:class:`~dispatch.schedule.plan.PlannedFiring` or a recorded
:class:`~dispatch.schedule.firings.Run`, described by the same words as
``dispatch plan --json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dispatch.config import Settings
from dispatch.schedule.firings import Run
from dispatch.schedule.model import Schedule, ScheduleSet
from dispatch.schedule.plan import PlannedFiring
from dispatch.schedule.planview import firing_json, firing_subject

HORIZON_DAYS = 30


def horizon(now: datetime, tz: ZoneInfo) -> datetime:
    """The calendar's end: the last instant of the 30th day from today, site
    time, which is what ``dispatch plan --until <that day>`` plans to."""
    last = now.astimezone(tz).date() + timedelta(days=HORIZON_DAYS)
    return datetime.combine(last, time(23, 59, 59), tz)


@dataclass(frozen=True, slots=True)
class Entry:
    local: datetime
    """When it starts sending (or fired), in the site's timezone."""
    schedule_id: str
    kind: str
    state: str
    """send | skip | wait for a planned firing; the recorded status for a past one."""
    summary: str
    """What it would send or why it would skip; what it did, for a past one."""
    fire_time_iso: str = ""
    """Planned firings: the fire time exactly as ``plan --json`` prints it."""
    edition_id: str | None = None
    past: bool = False
    detail: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Day:
    day: date
    in_range: bool
    is_today: bool
    entries: tuple[Entry, ...]
    quiet: tuple[str, ...] = ()
    """Schedules whose quiet hours cover part of this day."""

    @property
    def feeds(self) -> tuple[Entry, ...]:
        return tuple(e for e in self.entries if e.kind == "feeds")

    @property
    def sends(self) -> tuple[Entry, ...]:
        return tuple(e for e in self.entries if e.kind != "feeds")


@dataclass(frozen=True, slots=True)
class HourCell:
    day: date
    hour: int
    entries: tuple[Entry, ...]
    quiet: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Calendar:
    title: str
    weeks: tuple[tuple[Day, ...], ...] = ()
    hours: tuple[tuple[HourCell, ...], ...] = ()
    """Week view: 24 rows of 7 cells."""
    days: tuple[date, ...] = ()
    entries: tuple[Entry, ...] = field(default=())


def planned_entry(settings: Settings, p: PlannedFiring, tz: ZoneInfo) -> Entry:
    data = firing_json(p, firing_subject(settings, p))
    return Entry(p.starts_at.astimezone(tz), p.schedule.id, p.schedule.kind, p.verdict,
                 _summary(data), str(data["fire_time"]), detail=_detail(data, p))


def _summary(data: dict[str, object]) -> str:
    if data["action"] == "skip":
        return f"skip: {data['reason']}"
    if data["action"] == "wait":
        return f"waits: {data['reason']}"
    sends = data.get("sends")
    if isinstance(sends, dict) and "email" in sends:
        email = sends["email"]
        return (f"email to {', '.join(email['audience'])} ({email['recipients']} "
                f"reader(s)): {email['subject']}")
    if isinstance(sends, dict) and "social" in sends:
        networks = sends["social"]["networks"]
        return "social posts to " + (networks if isinstance(networks, str)
                                     else ", ".join(networks))
    return "rebuild the feeds"


def _detail(data: dict[str, object], p: PlannedFiring) -> tuple[str, ...]:
    lines = []
    window = data.get("window")
    if isinstance(window, dict):
        lines.append(f"digest window {window['start']} to {window['end']}: "
                     f"{window['articles']} article(s)")
    lines.extend(f"{a.title} ({a.slug})" for a in p.articles[:10])
    if p.starts_at != p.fire_time:
        lines.append("held by quiet hours: due "
                     f"{p.fire_time.astimezone(p.schedule.tz):%H:%M %Z}")
    return tuple(lines)


def past_entry(run: Run, tz: ZoneInfo, schedules: dict[str, Schedule]) -> Entry:
    s = schedules.get(run.schedule_id)
    summary = run.summary or run.reason or run.status
    return Entry(run.fire_time.astimezone(tz), run.schedule_id, s.kind if s else "?",
                 run.status, summary, edition_id=run.edition_id, past=True,
                 detail=tuple(run.articles[:10]))


def _quiet_on(schedules: Sequence[Schedule], day: date, hour: int | None,
              tz: ZoneInfo) -> tuple[str, ...]:
    """Schedules whose quiet hours hold the given site-time hour (or any hour)."""
    found = []
    hours = range(24) if hour is None else (hour,)
    for s in schedules:
        q = s.quiet_hours
        if q is None or not s.enabled:
            continue
        for h in hours:
            instant = datetime.combine(day, time(h, 30), tz)
            if q.contains(instant.astimezone(s.tz)):
                found.append(s.id)
                break
    return tuple(found)


def month_view(entries: Sequence[Entry], schedules: ScheduleSet, first: date, last: date,
               today: date, tz: ZoneInfo, title: str) -> Calendar:
    """Whole weeks (Monday first) covering ``first`` .. ``last``."""
    start = first - timedelta(days=first.weekday())
    end = last + timedelta(days=6 - last.weekday())
    by_day: dict[date, list[Entry]] = {}
    for e in entries:
        by_day.setdefault(e.local.date(), []).append(e)
    weeks = []
    day = start
    while day <= end:
        week = []
        for _ in range(7):
            week.append(Day(day, first <= day <= last, day == today,
                            tuple(sorted(by_day.get(day, ()), key=lambda e: e.local)),
                            _quiet_on(schedules.schedules, day, None, tz)))
            day += timedelta(days=1)
        weeks.append(tuple(week))
    return Calendar(title, weeks=tuple(weeks), entries=tuple(entries))


def week_view(entries: Sequence[Entry], schedules: ScheduleSet, monday: date, tz: ZoneInfo,
              title: str) -> Calendar:
    days = tuple(monday + timedelta(days=i) for i in range(7))
    cells: dict[tuple[date, int], list[Entry]] = {}
    for e in entries:
        cells.setdefault((e.local.date(), e.local.hour), []).append(e)
    rows = tuple(tuple(HourCell(d, h, tuple(cells.get((d, h), ())),
                                _quiet_on(schedules.schedules, d, h, tz)) for d in days)
                 for h in range(24))
    return Calendar(title, hours=rows, days=days, entries=tuple(entries))
