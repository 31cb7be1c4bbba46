"""When schedules fire: crontab weekdays, DST nights, splitting time windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.schedulekit import schedules, utc

from dispatch.schedule.model import Schedule
from dispatch.schedule.triggers import due_firings, next_firings, normalise_cron


def cron(expr: str, tz: str = "UTC") -> Schedule:
    return schedules(f"schedules:\n  - id: x\n    kind: feeds\n    cron: '{expr}'\n"
                     f"    timezone: {tz}\n").schedules[0]


def local_times(fires: list[datetime], tz: str) -> list[str]:
    return [f.astimezone(ZoneInfo(tz)).strftime("%a %Y-%m-%d %H:%M %Z") for f in fires]


@pytest.mark.parametrize(("field", "days"), [
    ("1", "mon"), ("0", "sun"), ("7", "sun"), ("1-5", "mon,tue,wed,thu,fri"),
    ("0,6", "sat,sun"), ("*/2", "tue,thu,sat,sun"), ("5-7", "fri,sat,sun"),
    ("mon", "mon"), ("MON-FRI", "mon-fri"),
])
def test_numeric_weekdays_mean_what_crontab_means(field: str, days: str) -> None:
    # APScheduler 3.x would read "1" as Tuesday (Monday = 0); we translate.
    assert normalise_cron(f"0 9 * * {field}") == f"0 9 * * {days}"


def test_weekday_one_fires_on_monday() -> None:
    fires = due_firings(cron("0 9 * * 1"), utc(2026, 11, 1), utc(2026, 11, 15))
    assert local_times(fires, "UTC") == ["Mon 2026-11-02 09:00 UTC", "Mon 2026-11-09 09:00 UTC"]


@pytest.mark.parametrize("expr", ["0 9 * * 8", "0 9 * * 3#6", "0 9 * *", "61 9 * * *",
                                  "0 9 * * MONDAY", "0 9 * jnu *"])
def test_bad_crontab_lines_are_rejected(expr: str) -> None:
    with pytest.raises(ValueError):
        normalise_cron(expr)


def test_fall_back_night_new_york_fires_a_daily_0130_job_exactly_once() -> None:
    # 2026-11-01: at 02:00 EDT clocks go back to 01:00 EST, so 01:30 happens
    # twice. APScheduler 3.11 alone fires at 05:30 and 06:30 UTC.
    fires = due_firings(cron("30 1 * * *", "America/New_York"),
                        utc(2026, 10, 31, 12), utc(2026, 11, 2, 12))
    assert fires == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]
    assert local_times(fires, "America/New_York") == ["Sun 2026-11-01 01:30 EDT",
                                                      "Mon 2026-11-02 01:30 EST"]


def test_spring_forward_night_new_york() -> None:
    # 2026-03-08: at 02:00 EST clocks jump to 03:00 EDT. 01:30 exists and fires
    # once as usual; 02:30 does not exist and fires once, at the moment of the
    # change (03:00 EDT), as cron does (APScheduler alone: 03:30 EDT).
    since, until = utc(2026, 3, 7, 12), utc(2026, 3, 9, 12)
    early = due_firings(cron("30 1 * * *", "America/New_York"), since, until)
    assert local_times(early, "America/New_York") == ["Sun 2026-03-08 01:30 EST",
                                                      "Mon 2026-03-09 01:30 EDT"]
    gap = due_firings(cron("30 2 * * *", "America/New_York"), since, until)
    assert gap == [utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)]
    assert local_times(gap, "America/New_York") == ["Sun 2026-03-08 03:00 EDT",
                                                    "Mon 2026-03-09 02:30 EDT"]


def test_dst_nights_in_london() -> None:
    # Spring: 01:00 GMT -> 02:00 BST on 2026-03-29; 01:30 does not exist that
    # night and fires at the change, 02:00 BST. Autumn: 01:30 happens twice on 2026-10-25.
    spring = due_firings(cron("30 1 * * *", "Europe/London"), utc(2026, 3, 28, 12),
                         utc(2026, 3, 30, 12))
    assert local_times(spring, "Europe/London") == ["Sun 2026-03-29 02:00 BST",
                                                    "Mon 2026-03-30 01:30 BST"]
    autumn = due_firings(cron("30 1 * * *", "Europe/London"), utc(2026, 10, 24, 12),
                         utc(2026, 10, 26, 12))
    assert local_times(autumn, "Europe/London") == ["Sun 2026-10-25 01:30 BST",
                                                    "Mon 2026-10-26 01:30 GMT"]
    # Every half hour through the repeated hour: each wall-clock time once.
    halves = due_firings(cron("*/30 1 * * *", "Europe/London"), utc(2026, 10, 24, 12),
                         utc(2026, 10, 25, 12))
    assert local_times(halves, "Europe/London") == ["Sun 2026-10-25 01:00 BST",
                                                    "Sun 2026-10-25 01:30 BST"]


def test_every_counts_elapsed_time_and_at_fires_once() -> None:
    parsed = schedules("""\
        schedules:
          - id: e
            kind: feeds
            every: 6h
            timezone: UTC
          - id: a
            kind: feeds
            at: 2026-12-01 09:00
        """.replace("        ", ""))
    every, at = parsed.schedules
    assert due_firings(every, utc(2026, 5, 1, 1), utc(2026, 5, 1, 13)) == [
        utc(2026, 5, 1, 6), utc(2026, 5, 1, 12)]
    assert due_firings(at, utc(2026, 11, 1), utc(2027, 1, 1)) == [utc(2026, 12, 1, 9)]
    assert due_firings(at, utc(2026, 12, 1, 9), utc(2027, 1, 1)) == []  # (since, until]
    assert next_firings(at, utc(2026, 11, 1), 3) == [utc(2026, 12, 1, 9)]


def test_next_firings_finds_rare_schedules() -> None:
    yearly = cron("0 9 1 1 *", "Europe/London")
    assert next_firings(yearly, utc(2026, 11, 25), 2) == [utc(2027, 1, 1, 9), utc(2028, 1, 1, 9)]


ZONES = st.sampled_from(["America/New_York", "Europe/London", "Australia/Sydney",
                         "Asia/Kolkata", "UTC"])
EXPRS = st.sampled_from(["30 1 * * *", "30 2 * * *", "0 8 * * mon", "*/20 0-3 * * *",
                         "15 9 1 * *", "0 0 * * 1-5"])


@settings(max_examples=60, deadline=None)
@given(zone=ZONES, expr=EXPRS, start=st.integers(0, 365 * 24), span=st.integers(1, 24 * 40),
       cut=st.floats(0, 1))
def test_splitting_a_window_never_adds_or_loses_a_firing(zone: str, expr: str, start: int,
                                                         span: int, cut: float) -> None:
    """Catch-up relies on this: (a, c] == (a, b] + (b, c] for any b, and no
    local wall-clock time fires twice."""
    schedule = cron(expr, zone)
    a = utc(2026, 1, 1) + timedelta(hours=start)
    c = a + timedelta(hours=span)
    b = a + (c - a) * cut
    whole = due_firings(schedule, a, c)
    assert whole == due_firings(schedule, a, b) + due_firings(schedule, b, c)
    assert whole == sorted(set(whole))
    walls = [f.astimezone(ZoneInfo(zone)).replace(tzinfo=None, fold=0) for f in whole]
    assert len(walls) == len(set(walls))
    assert all(f.tzinfo is UTC for f in whole)
