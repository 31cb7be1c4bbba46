"""Digest windows: what an edition covers after an outage, and where the first one starts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from tests.schedulekit import Simulation, Written, article, schedules, utc

from dispatch.schedule import firings
from dispatch.schedule.model import ScheduleSet
from dispatch.schedule.plan import History, plan_schedule
from dispatch.store.engine import Store, open_store

HOUR = timedelta(hours=1)
WEEKLY = """\
timezone: UTC
schedules:
  - id: weekly
    kind: digest
    cron: "0 8 * * mon"
    audience: [weekly]
    max_lateness: 12h
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.dispose()


def digests(sim: Simulation) -> list[tuple[str, tuple[str, ...]]]:
    return [(c[1], c[2]) for c in sim.calls("digest")]


def test_catch_up_after_an_outage_sends_what_was_dated_before_the_slot(store: Store) -> None:
    sim = Simulation(store, schedules(WEEKLY))
    sim.files = [
        Written(article("before", utc(2026, 3, 3, 9)), utc(2026, 3, 3, 9)),
        # Dated Sunday, but dispatch was down from Saturday to Monday 11:00:
        # it is first seen three hours after the Monday 08:00 slot.
        Written(article("during-outage", utc(2026, 3, 8, 12)), utc(2026, 3, 8, 12)),
        # Dated after the slot: it belongs to the next week.
        Written(article("after-slot", utc(2026, 3, 9, 9)), utc(2026, 3, 9, 9)),
    ]
    sim.run(utc(2026, 3, 2, 9), utc(2026, 3, 7, 0), HOUR)
    sim.run(utc(2026, 3, 9, 11), utc(2026, 3, 16, 9), HOUR)  # back up Monday 11:00
    assert [r.fire_time for r in sim.reports if r.outcome == "sent"] == [utc(2026, 3, 9, 8),
                                                                       utc(2026, 3, 16, 8)]
    sent = [set(c[2]) for c in sim.calls("digest")]
    # The late firing has what was dated in its window, first seen late or not.
    assert sent[0] == {"before", "during-outage"}
    # ... and the next edition has the rest, and nothing twice.
    assert sent[1] == {"after-slot"}


def test_an_article_first_seen_after_a_late_firing_goes_in_the_next_edition_once(
        store: Store) -> None:
    sim = Simulation(store, schedules(WEEKLY))
    sim.files = [
        Written(article("a", utc(2026, 3, 4, 9)), utc(2026, 3, 4, 9)),
        # Backdated file added on Tuesday: dated inside last week's window,
        # which has already gone out. It goes in the next edition.
        Written(article("backdated", utc(2026, 3, 5, 9)), utc(2026, 3, 10, 9)),
    ]
    sim.run(utc(2026, 3, 2, 9), utc(2026, 3, 23, 9), HOUR)
    assert digests(sim) == [("weekly", ("a",)), ("weekly", ("backdated",))]


def test_starts_sets_the_first_window(store: Store) -> None:
    text = WEEKLY + "    starts: 2026-11-30\n"
    sim = Simulation(store, schedules(text))
    sim.files = [
        Written(article("old", utc(2026, 11, 20, 9)), utc(2026, 11, 20, 9)),
        Written(article("this-week", utc(2026, 12, 1, 9)), utc(2026, 12, 1, 9)),
    ]
    # dispatch saw both articles before the schedule was added on Thursday.
    sim.schedules = ScheduleSet()
    sim.step(utc(2026, 11, 20, 12))
    sim.step(utc(2026, 12, 1, 12))
    sim.schedules = schedules(text)
    sim.run(utc(2026, 12, 3, 12), utc(2026, 12, 7, 9), HOUR)
    assert digests(sim) == [("weekly", ("this-week",))]
    # Without starts: the digest counts from Thursday and has nothing to send.
    other = Simulation(store, schedules(WEEKLY.replace("weekly", "other")))
    other.files = sim.files
    other.run(utc(2026, 12, 3, 12), utc(2026, 12, 7, 9), HOUR)
    assert digests(other) == []
    (skip,) = [r for r in other.reports if r.schedule_id == "other"]
    assert skip.detail.startswith("0 new articles since Thu 2026-12-03 12:00")
    assert firings.runs(store, "weekly")[0].window_start == utc(2026, 11, 30)


def test_the_planner_never_puts_an_article_in_two_windows() -> None:
    schedule = schedules(WEEKLY).schedules[0]
    published = [(article("late", utc(2026, 3, 8, 12)), utc(2026, 3, 9, 11)),
                 (article("next", utc(2026, 3, 10, 12)), utc(2026, 3, 10, 12))]
    calls = []

    def remembered() -> History:
        calls.append(1)
        return History(utc(2026, 3, 2, 8), frozenset())

    planned = plan_schedule(schedule, published, utc(2026, 3, 2, 9), utc(2026, 3, 24),
                            utc(2026, 3, 2, 9), remembered)
    assert [(p.fire_time, p.verdict, [a.slug for a in p.articles]) for p in planned] == [
        (utc(2026, 3, 9, 8), "send", ["late"]),
        (utc(2026, 3, 16, 8), "send", ["next"]),
        (utc(2026, 3, 23, 8), "skip", []),
    ]
    assert planned[1].window == (utc(2026, 3, 9, 8), utc(2026, 3, 16, 8))
    assert planned[2].reason == "0 new articles since Mon 2026-03-16 08:00; min_articles is 1"
    assert calls == [1]  # the store is read once, and only when a window is needed


# --- starts: is about the articles' dates ------------------------------------------------

STARTS = WEEKLY + "    starts: 2026-11-30\n"


def test_starts_is_about_the_articles_dates_not_when_dispatch_first_saw_them(
        store: Store) -> None:
    """dispatch is first run on the site on Wednesday, after ``starts``: the
    whole archive is first seen then. The first edition held it all; it
    must hold what is dated since ``starts`` (the docs: "the first edition
    holds articles since then")."""
    sim = Simulation(store, schedules(STARTS))
    sim.files = [
        Written(article("archive", utc(2026, 11, 20, 9)), utc(2026, 11, 20, 9)),
        # Written with its date alone: midnight of the day `starts` names.
        Written(article("on-the-day", utc(2026, 11, 30)), utc(2026, 11, 30)),
        Written(article("this-week", utc(2026, 12, 1, 9)), utc(2026, 12, 1, 9)),
        # Written ahead of time, before `starts`, dated after it.
        Written(article("written-ahead", utc(2026, 12, 4, 9)), utc(2026, 11, 25, 9)),
        # A backdated file added after the first edition: dated before
        # `starts`, so never this digest's news either.
        Written(article("old-but-added-later", utc(2026, 11, 25, 9)), utc(2026, 12, 9, 9)),
        # Dated in the future of the first edition: the second one has it.
        Written(article("next-week", utc(2026, 12, 10, 9)), utc(2026, 12, 2, 9)),
    ]
    sim.run(utc(2026, 12, 2, 12), utc(2026, 12, 21, 9), HOUR)
    assert digests(sim) == [("weekly", ("written-ahead", "this-week", "on-the-day")),
                            ("weekly", ("next-week",))]
    windows = sorted((r.window_start, r.window_end) for r in firings.runs(store, "weekly")
                     if r.status == "sent")
    assert windows[0] == (utc(2026, 11, 30), utc(2026, 12, 7, 8))


def test_the_planner_and_dispatch_plan_follow_the_same_starts_rule() -> None:
    schedule = schedules(STARTS).schedules[0]
    published = [(article("archive", utc(2026, 11, 20, 9)), utc(2026, 12, 2, 12)),
                 (article("on-the-day", utc(2026, 11, 30)), utc(2026, 12, 2, 12)),
                 (article("seen-early", utc(2026, 12, 1, 9)), utc(2026, 11, 1, 9))]
    planned = plan_schedule(schedule, published, utc(2026, 12, 2, 12), utc(2026, 12, 8),
                            utc(2026, 12, 2, 12),
                            lambda: History(utc(2026, 11, 30), frozenset()))
    assert [[a.slug for a in p.articles] for p in planned] == [["seen-early", "on-the-day"]]


@pytest.mark.parametrize(("zone", "written", "instant"), [
    # A date alone is its midnight in the schedule's zone.
    ("America/New_York", "2026-11-30", utc(2026, 11, 30, 5)),
    ("Australia/Sydney", "2026-11-30", utc(2026, 11, 29, 13)),
    # A time the clocks skip is the moment they change, as for `at:` (zoneinfo
    # alone read London's 01:30 as 01:30 GMT, half an hour after the change).
    ("Europe/London", "2027-03-28 01:30", utc(2027, 3, 28, 1)),
    ("America/New_York", "2027-03-14 02:30", utc(2027, 3, 14, 7)),
    # A time that happens twice is the first one (summer time).
    ("Europe/London", "2026-10-25 01:30", utc(2026, 10, 25, 0, 30)),
    # An offset written with it is kept.
    ("Europe/London", "2026-10-25T01:30:00+00:00", utc(2026, 10, 25, 1, 30)),
])
def test_starts_is_read_in_the_schedules_zone_across_summer_time(
        zone: str, written: str, instant: object) -> None:
    text = WEEKLY.replace("timezone: UTC", f"timezone: {zone}") + f"    starts: {written}\n"
    (schedule,) = schedules(text).schedules
    assert schedule.starts == instant


def test_an_article_written_at_the_skipped_hour_of_starts_belongs() -> None:
    """``starts: 2027-03-28 01:30`` in London, where 01:30 does not exist that
    night: an article dated with the same words (read in the site's zone as
    01:30 GMT) is not before it."""
    text = WEEKLY.replace("timezone: UTC", "timezone: Europe/London")
    (schedule,) = schedules(text + "    starts: 2027-03-28 01:30\n").schedules
    written = article("same-words", utc(2027, 3, 28, 1, 30))
    before = article("before", utc(2027, 3, 28, 0, 59))
    published = [(written, utc(2027, 3, 28, 3)), (before, utc(2027, 3, 28, 3))]
    planned = plan_schedule(schedule, published, utc(2027, 3, 28, 3), utc(2027, 3, 30),
                            utc(2027, 3, 28, 3),
                            lambda: History(utc(2027, 3, 28, 1), frozenset()))
    assert [[a.slug for a in p.articles] for p in planned] == [["same-words"]]
