"""dispatch's firings against croniter's: random cron lines x 20 zones x 10 years.

croniter is an independent implementation of the same crontab(5) reading.
Away from the summer-time changes both must give exactly the same instants.
Within a few hours of a change the only allowed differences are our
documented rules (see ``dispatch.schedule.cron``):

* a fixed time that happens twice fires once, the first time (croniter fires
  both times);
* a fixed time that does not exist fires once, at the moment of the change;
* with an hour field of ``*`` or a step, every real occurrence fires.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from tests.schedulekit import schedules

from dispatch.schedule.cron import parse_cron
from dispatch.schedule.triggers import due_firings

ZONES = [
    "UTC", "Europe/London", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe",
    "America/Chicago", "America/Los_Angeles", "America/Santiago", "America/Havana",
    "America/St_Johns", "America/Sao_Paulo", "Europe/Berlin", "Europe/Moscow", "Africa/Cairo",
    "Asia/Tehran", "Asia/Kolkata", "Asia/Kathmandu", "Asia/Tokyo", "Pacific/Auckland",
    "Pacific/Chatham",
]
MINUTES = st.sampled_from(["0", "30", "15", "59", "*/15", "*/30", "0,30", "5-10/5", "45"])
HOURS = st.sampled_from(["*", "*", "*/1", "0-23/1", "*/2", "*/3", "0", "1", "2", "3", "12",
                         "1-3", "0,2,12", "22-2", "9-17"])
DAYS = st.sampled_from(["*", "*", "?", "1", "15", "1-7", "31", "L", "10-20"])
MONTHS = st.sampled_from(["*", "*", "3", "10", "jan-jun", "nov-feb", "*/2"])
WEEKDAYS = st.sampled_from(["*", "*", "mon", "1-5", "fri-mon", "sun", "0,6", "mon#1"])
NEAR = timedelta(hours=4)
HOUR = timedelta(hours=1)


def transitions(zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """UTC instants where the zone's offset changes in [start, end]."""
    out = []
    t = start
    while t < end:
        nxt = t + timedelta(hours=1)
        if t.astimezone(zone).utcoffset() != nxt.astimezone(zone).utcoffset():
            low, high = t, nxt
            while high - low > timedelta(seconds=1):
                mid = low + (high - low) / 2
                if mid.astimezone(zone).utcoffset() == low.astimezone(zone).utcoffset():
                    low = mid
                else:
                    high = mid
            out.append(high.replace(microsecond=0))
        t = nxt
    return out


def croniter_firings(line: str, zone: ZoneInfo, start: datetime, end: datetime) -> set[datetime]:
    it = croniter(line, start.astimezone(zone))
    out = set()
    while True:
        fire = it.get_next(datetime).astimezone(UTC)
        if fire > end:
            return out
        out.add(fire)


def by_the_rules(line: str, zone: ZoneInfo, change: datetime) -> set[datetime]:
    """The documented rules, walked minute by minute around one change.

    An oracle independent of ``cron.py``'s walk: every UTC minute whose local
    wall-clock time matches is a real occurrence; a fixed line keeps only
    the first of a repeated time; a fixed time skipped by the change fires at
    the change itself.
    """
    spec = parse_cron(line)
    out: set[datetime] = set()
    t = change - NEAR
    while t <= change + NEAR:
        local = t.astimezone(zone)
        wall = local.replace(tzinfo=None)
        if (spec.day_matches(wall.date()) and wall.hour in spec.hours
                and wall.minute in spec.minutes):
            # astimezone marks the second pass of a repeated clock time fold=1.
            second = local.fold == 1 and local.replace(fold=0).astimezone(UTC) != t
            if spec.every_hour or not second:
                out.add(t)
        t += timedelta(minutes=1)
    before, after = (change - timedelta(seconds=1)).astimezone(zone), change.astimezone(zone)
    if not spec.every_hour and after.utcoffset() > before.utcoffset():  # type: ignore[operator]
        # Spring: the wall clock jumps over [before's clock, after's clock).
        wall = before.replace(tzinfo=None, second=0, microsecond=0) + timedelta(minutes=1)
        while wall < after.replace(tzinfo=None):
            if (spec.day_matches(wall.date()) and wall.hour in spec.hours
                    and wall.minute in spec.minutes):
                out.add(change)
            wall += timedelta(minutes=1)
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(minute=MINUTES, hour=HOURS, day=DAYS, month=MONTHS, weekday=WEEKDAYS,
       zone_name=st.sampled_from(ZONES), start_day=st.integers(0, 3652),
       span_days=st.integers(1, 40), at_a_change=st.booleans())
def test_dispatch_agrees_with_croniter_except_for_the_documented_dst_rules(
        minute: str, hour: str, day: str, month: str, weekday: str, zone_name: str,
        start_day: int, span_days: int, at_a_change: bool) -> None:
    # croniter reads a day field like "*/2" as restricted (OR with the weekday);
    # crontab(5) and we read it as unrestricted. Also leave "#" and "L" alone
    # when both day fields are restricted (croniter's readings vary there).
    if at_a_change:  # every day of the year, so that the change day itself fires
        day, month = "*", "*"
    restricted_day, restricted_weekday = day not in ("*", "?"), weekday != "*"
    assume(not (restricted_day and restricted_weekday and ("#" in weekday or day == "L")))
    line = f"{minute} {hour} {day} {month} {weekday}"
    zone = ZoneInfo(zone_name)
    start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=start_day, minutes=7)
    if at_a_change:  # half the examples straddle a change, where the rules matter
        upcoming = transitions(zone, start, start + timedelta(days=200))
        if upcoming:
            start = upcoming[0] - timedelta(hours=30, minutes=7)
    end = start + timedelta(days=span_days)
    ours = due_firings(schedules(f"schedules:\n  - id: x\n    kind: feeds\n    cron: '{line}'\n"
                                 f"    timezone: {zone_name}\n").schedules[0], start, end)
    theirs = croniter_firings(line, zone, start, end)
    changes = transitions(zone, start - NEAR, end + NEAR)

    def near_change(t: datetime) -> bool:
        return any(abs(t - c) <= NEAR for c in changes)

    spec = parse_cron(line)
    assert ours == sorted(set(ours))
    for fire in set(ours) ^ theirs:
        assert near_change(fire), (line, zone_name, fire, "differs away from a DST change")
    # Near each change, exactly what the documented rules give.
    for change in changes:
        low, high = max(start, change - NEAR + HOUR), min(end, change + NEAR - HOUR)
        expected = {t for t in by_the_rules(line, zone, change) if low < t <= high}
        assert {t for t in ours if low < t <= high} == expected, (line, zone_name, change)
    if not spec.every_hour:
        walls = [f.astimezone(zone).replace(tzinfo=None, fold=0) for f in ours]
        assert len(walls) == len(set(walls)), (line, zone_name)
    # What croniter fires and we do not is a repeat of a fixed time, or the
    # later minutes of a time that did not exist (we fire those once).
    for fire in theirs - set(ours):
        local = fire.astimezone(zone)
        repeat = local.replace(fold=1 - local.fold).astimezone(UTC) != fire
        gap = any(c <= fire <= c + NEAR for c in changes)
        assert repeat or gap, (line, zone_name, fire)
