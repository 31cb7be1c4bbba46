"""Crontab lines mean what crontab(5) says, and summer time loses no firing.

Each test here failed on the APScheduler-based triggers this module replaced.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from tests.schedulekit import schedules, utc

from dispatch.schedule.cron import CronError, parse_cron
from dispatch.schedule.model import Schedule
from dispatch.schedule.spec import parse_schedules
from dispatch.schedule.triggers import due_firings, next_firings


def cron(expr: str, tz: str = "UTC") -> Schedule:
    return schedules(f"schedules:\n  - id: x\n    kind: feeds\n    cron: '{expr}'\n"
                     f"    timezone: {tz}\n").schedules[0]


def local(fires: list[datetime], tz: str) -> list[str]:
    return [f.astimezone(ZoneInfo(tz)).strftime("%a %Y-%m-%d %H:%M %Z") for f in fires]


def day_of(expr: str, tz: str, year: int, month: int, day: int) -> list[datetime]:
    """Firings whose local date is the given day."""
    zone = ZoneInfo(tz)
    start = datetime(year, month, day, tzinfo=zone) - timedelta(days=1)
    fires = due_firings(cron(expr, tz), start, start + timedelta(days=3))
    return [f for f in fires if f.astimezone(zone).date() == datetime(year, month, day).date()]


# --- the day after a spring change -------------------------------------------------

def test_daily_midnight_in_new_york_fires_on_the_day_after_the_spring_change() -> None:
    fires = due_firings(cron("0 0 * * *", "America/New_York"), utc(2027, 3, 13), utc(2027, 3, 17))
    assert local(fires, "America/New_York") == [
        "Sat 2027-03-13 00:00 EST", "Sun 2027-03-14 00:00 EST", "Mon 2027-03-15 00:00 EDT",
        "Tue 2027-03-16 00:00 EDT"]


def test_monday_midnight_in_london_fires_the_day_after_the_spring_change() -> None:
    fires = due_firings(cron("0 0 * * 1", "Europe/London"), utc(2027, 3, 20), utc(2027, 4, 6))
    assert local(fires, "Europe/London") == ["Mon 2027-03-22 00:00 GMT",
                                             "Mon 2027-03-29 00:00 BST",
                                             "Mon 2027-04-05 00:00 BST"]


def test_a_whole_year_of_daily_firings_is_365_in_every_zone() -> None:
    for tz in ("America/New_York", "Europe/London", "Australia/Sydney", "Australia/Lord_Howe"):
        zone = ZoneInfo(tz)
        fires = due_firings(cron("0 0 * * *", tz), datetime(2027, 1, 1, tzinfo=zone)
                            - timedelta(seconds=1), datetime(2027, 12, 31, 12, tzinfo=zone))
        assert len(fires) == 365, tz
        assert len({f.astimezone(zone).date() for f in fires}) == 365


# --- day of month OR weekday ---------------------------------------------------------

def test_day_of_month_and_weekday_fire_on_either_as_crontab_does() -> None:
    fires = due_firings(cron("0 9 1-7 * 1"), utc(2027, 1, 1), utc(2028, 1, 1))
    # 12 x 7 days 1-7, plus the 52 Mondays, less the 12 Mondays among those days
    # (croniter counts 124 too).
    assert len(fires) == 12 * 7 + 52 - 12
    assert utc(2027, 1, 11, 9) in fires  # a Monday outside days 1-7
    assert utc(2027, 1, 2, 9) in fires  # a Saturday inside days 1-7


def test_first_monday_is_written_mon_hash_1() -> None:
    fires = due_firings(cron("0 9 * * mon#1"), utc(2027, 1, 1), utc(2028, 1, 1))
    assert len(fires) == 12
    assert all(f.weekday() == 0 and f.day <= 7 for f in fires)


def test_a_field_starting_with_a_star_leaves_the_other_in_charge() -> None:
    # "*/2" is unrestricted for the OR rule: odd days that are also Mondays.
    fires = due_firings(cron("0 9 */2 * mon"), utc(2027, 1, 1), utc(2027, 3, 1))
    assert fires and all(f.weekday() == 0 and f.day % 2 == 1 for f in fires)
    assert [p.severity.value for p in parse_schedules(
        "schedules:\n  - id: x\n    kind: feeds\n    cron: '0 9 */2 * mon'\n")[1]] == []


# --- aliases, names, ? ---------------------------------------------------------------

@pytest.mark.parametrize(("alias", "line"), [
    ("@hourly", "0 * * * *"), ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"), ("@monthly", "0 0 1 * *"), ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
])
def test_aliases_mean_their_crontab_line(alias: str, line: str) -> None:
    a, b = cron(alias, "Europe/London"), cron(line, "Europe/London")
    assert due_firings(a, utc(2026, 1, 1), utc(2028, 1, 1)) == \
        due_firings(b, utc(2026, 1, 1), utc(2028, 1, 1))


@pytest.mark.parametrize(("field", "weekdays"), [
    ("sun-sat", {0, 1, 2, 3, 4, 5, 6}), ("fri-mon", {4, 5, 6, 0}), ("sat-sun", {5, 6}),
    ("5-1", {4, 5, 6, 0}), ("?", {0, 1, 2, 3, 4, 5, 6}), ("mon-fri/2", {0, 2, 4}),
])
def test_named_and_wrapping_weekday_ranges(field: str, weekdays: set[int]) -> None:
    fires = due_firings(cron(f"0 9 * * {field}"), utc(2027, 1, 1), utc(2027, 2, 1))
    assert {f.weekday() for f in fires} == weekdays  # Python: Monday = 0


def test_question_mark_in_day_of_month_means_any() -> None:
    assert due_firings(cron("0 9 ? * mon"), utc(2027, 1, 1), utc(2027, 2, 1)) == \
        due_firings(cron("0 9 * * mon"), utc(2027, 1, 1), utc(2027, 2, 1))


def test_month_ranges_wrap_around_new_year() -> None:
    fires = due_firings(cron("0 9 1 nov-feb *"), utc(2026, 1, 1), utc(2027, 1, 1))
    assert [f.month for f in fires] == [1, 2, 11, 12]


@pytest.mark.parametrize(("line", "message"), [
    ("0 0 9 * * mon", "6 fields: a seconds field is not supported"),
    ("0 0 9 * * mon 2027", "7 fields: seconds and year fields are not supported"),
    ("0 9 * *", "4 field(s) found, 5 needed"),
    ("61 9 * * *", "minute field: 61 is out of range 0-59"),
    ("0 24 * * *", "hour field: 24 is out of range 0-23"),
    ("0 9 * * MONDAY", 'weekday field: "MONDAY" is neither a number 0-7 nor a name'),
    ("0 9 * jnu *", 'month field: "jnu" is neither a number 1-12 nor a name'),
    ("0 9 * * mon#6", "needs a week number 1-5 after #"),
    ("? 9 * * *", 'minute field: "?" only means "any" in the day-of-month'),
    ("*/0 9 * * *", 'minute field: step "0" is not a whole number of at least 1'),
    ("@reboot", "@reboot has no time of day"),
    ("@fortnightly", '"@fortnightly" is not a known alias'),
])
def test_refusals_name_the_field_and_what_was_found(line: str, message: str) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(line)
    assert message in str(caught.value)


def test_a_refused_line_is_reported_with_its_line_number() -> None:
    _, found = parse_schedules("schedules:\n  - id: x\n    kind: feeds\n"
                               "    cron: '0 0 9 * * mon'\n")
    assert [str(p).split(" (expected")[0] for p in found] == [
        'schedules.yaml:4: schedules[0].cron: "0 0 9 * * mon" is not a cron expression: '
        "6 fields: a seconds field is not supported"]


def test_a_line_that_never_fires_is_an_error() -> None:
    _, found = parse_schedules("schedules:\n  - id: x\n    kind: feeds\n    cron: '0 0 30 2 *'\n")
    assert any(p.is_error and "never fires" in p.message for p in found)


# --- summer time, four zones ----------------------------------------------------------

# (zone, spring day, autumn day, a clock time in the spring gap, the change as
#  local time after the jump, a clock time repeated in autumn)
ZONES = [
    ("Europe/London", (2027, 3, 28), (2027, 10, 31), "30 1", "02:00 BST", "30 1"),
    ("America/New_York", (2027, 3, 14), (2027, 11, 7), "30 2", "03:00 EDT", "30 1"),
    ("Australia/Sydney", (2027, 10, 3), (2027, 4, 4), "30 2", "03:00 AEDT", "30 2"),
    ("Australia/Lord_Howe", (2027, 10, 3), (2027, 4, 4), "15 2", "02:30 +11", "45 1"),
]


@pytest.mark.parametrize(("tz", "spring", "autumn", "gap", "change", "repeat"), ZONES)
def test_a_fixed_time_that_happens_twice_fires_once_the_first_time(
        tz: str, spring: tuple[int, int, int], autumn: tuple[int, int, int], gap: str,
        change: str, repeat: str) -> None:
    fires = day_of(f"{repeat} * * *", tz, *autumn)
    assert len(fires) == 1
    later = fires[0] + timedelta(hours=1 if tz != "Australia/Lord_Howe" else 0, minutes=30
                                 if tz == "Australia/Lord_Howe" else 0)
    zone = ZoneInfo(tz)
    # The same clock time comes round again after the change; we did not fire then.
    assert later.astimezone(zone).strftime("%H:%M") == fires[0].astimezone(zone).strftime("%H:%M")
    assert fires[0].astimezone(zone).fold == 0


@pytest.mark.parametrize(("tz", "spring", "autumn", "gap", "change", "repeat"), ZONES)
def test_a_fixed_time_that_does_not_exist_fires_once_at_the_change(
        tz: str, spring: tuple[int, int, int], autumn: tuple[int, int, int], gap: str,
        change: str, repeat: str) -> None:
    fires = day_of(f"{gap} * * *", tz, *spring)
    assert [f.astimezone(ZoneInfo(tz)).strftime("%H:%M %Z") for f in fires] == [change]
    # Every minute of a missing hour still fires only once.
    hour = gap.split()[1]
    # (Lord Howe skips 02:00-02:29 only: they fire once, at 02:30, with the real 02:30.)
    assert len(day_of(f"* {hour} * * *", tz, *spring)) == (
        1 if tz != "Australia/Lord_Howe" else 30)


@pytest.mark.parametrize(("tz", "spring", "autumn", "gap", "change", "repeat"), ZONES)
def test_hourly_lines_fire_for_every_real_hour(
        tz: str, spring: tuple[int, int, int], autumn: tuple[int, int, int], gap: str,
        change: str, repeat: str) -> None:
    half = tz == "Australia/Lord_Howe"  # clocks move 30 minutes: the hour count stays 24
    assert len(day_of("0 * * * *", tz, *spring)) == 23
    assert len(day_of("0 * * * *", tz, *autumn)) == (25 if not half else 24)
    # ... and every real half hour there: 01:30 happens twice in Lord Howe.
    assert len(day_of("30 * * * *", tz, *autumn)) == 25
    quarter = day_of("*/15 * * * *", tz, *autumn)
    assert len(quarter) == (100 if not half else 98)
    assert len(set(quarter)) == len(quarter)
    gaps = Counter(b - a for a, b in pairwise(quarter))
    assert set(gaps) == {timedelta(minutes=15)}  # real time, evenly spaced


def test_new_york_2027_spring_and_autumn_days_in_full() -> None:
    spring = day_of("0 * * * *", "America/New_York", 2027, 3, 14)
    assert local(spring[:3], "America/New_York") == [
        "Sun 2027-03-14 00:00 EST", "Sun 2027-03-14 01:00 EST", "Sun 2027-03-14 03:00 EDT"]
    autumn = day_of("0 * * * *", "America/New_York", 2027, 11, 7)
    assert local(autumn[:4], "America/New_York") == [
        "Sun 2027-11-07 00:00 EDT", "Sun 2027-11-07 01:00 EDT", "Sun 2027-11-07 01:00 EST",
        "Sun 2027-11-07 02:00 EST"]


def test_next_firings_of_an_alias() -> None:
    weekly = cron("@weekly", "Europe/London")
    assert next_firings(weekly, utc(2026, 12, 3), 2) == [utc(2026, 12, 6), utc(2026, 12, 13)]


@pytest.mark.parametrize(("line", "gap"), [("* * * * *", "1m"), ("*/2 9 * * *", "2m"),
                                           ("0,3 9 * * mon", "3m"), ("58,59 * * * *", "1m")])
def test_a_line_firing_more_often_than_every_5m_is_an_error(line: str, gap: str) -> None:
    """The same floor as `every:` (at least 5m): a digest on "* * * * *"
    would otherwise be sent every minute."""
    _, found = parse_schedules(f"schedules:\n  - id: x\n    kind: digest\n    lists: [weekly]\n"
                               f"    cron: '{line}'\n")
    too_often = [p for p in found if p.is_error and "apart" in p.message]
    assert too_often and too_often[0].line == 5 and f"fires {gap} apart" in too_often[0].message


@pytest.mark.parametrize("line", ["*/5 * * * *", "0 9 * * *", "0,5 9 * * *", "@hourly",
                                  "30 1 * * *"])
def test_lines_at_least_5m_apart_pass(line: str) -> None:
    _, found = parse_schedules(f"schedules:\n  - id: x\n    kind: feeds\n    cron: '{line}'\n")
    assert not [p for p in found if "apart" in p.message]


def test_a_feeds_rebuild_may_run_every_minute() -> None:
    _, found = parse_schedules("schedules:\n  - id: x\n    kind: feeds\n    cron: '* * * * *'\n")
    assert not [p for p in found if "apart" in p.message]
