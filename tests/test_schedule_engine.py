"""The scheduler over simulated time: a controllable clock and a real store.

Each test walks the clock forward the way ``dispatch run`` would (record what
is published, then tick) and asserts exactly what was queued and when.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from tests.schedulekit import Simulation, Written, article, schedules, utc

from dispatch.schedule import firings
from dispatch.schedule.actions import RecordingActions
from dispatch.schedule.engine import tick, trigger_now
from dispatch.store.engine import Store, open_store

HOUR = timedelta(hours=1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.dispose()


WEEK = """\
schedules:
  - id: weekly
    kind: digest
    cron: "0 8 * * mon"
    audience: [weekly]
  - id: alerts
    kind: article
    on_publish: true
    delay: 2h
    audience: [all]
  - id: social
    kind: social
    on_publish: true
  - id: feeds
    kind: feeds
    cron: "0 6 * * *"
"""


def test_a_simulated_week(any_store: Store) -> None:
    sim = Simulation(any_store, schedules(WEEK))
    sim.files = [
        # Published long before the scheduler existed: never sent by it.
        Written(article("old", utc(2026, 2, 1, 9)), utc(2026, 2, 1, 9)),
        Written(article("a1", utc(2026, 3, 2, 9, 30)), utc(2026, 3, 2, 10)),
        # Written on Tuesday, dated Friday: goes out when its date passes.
        Written(article("a3", utc(2026, 3, 6, 9)), utc(2026, 3, 3, 9)),
        Written(article("a2", utc(2026, 3, 4, 14)), utc(2026, 3, 4, 14)),
    ]
    sim.run(utc(2026, 3, 1, 12), utc(2026, 3, 9, 12), HOUR)

    assert sim.calls("article") == [
        ("article", "alerts", ("a1",), utc(2026, 3, 2, 12)),
        ("article", "alerts", ("a2",), utc(2026, 3, 4, 16)),
        ("article", "alerts", ("a3",), utc(2026, 3, 6, 11)),
    ]
    assert sim.calls("social") == [
        ("social", "social", ("a1",), utc(2026, 3, 2, 10)),
        ("social", "social", ("a2",), utc(2026, 3, 4, 14)),
        ("social", "social", ("a3",), utc(2026, 3, 6, 9)),
    ]
    assert [c[3] for c in sim.calls("feeds")] == [utc(2026, 3, d, 6) for d in range(2, 10)]
    # Monday 2nd: nothing new since the schedule began, so skipped (recorded);
    # Monday 9th: everything since, newest first.
    assert sim.calls("digest") == [("digest", "weekly", ("a3", "a2", "a1"), utc(2026, 3, 9, 8))]
    weekly = firings.runs(any_store, "weekly")
    assert [(r.fire_time, r.status) for r in weekly] == [
        (utc(2026, 3, 9, 8), "sent"), (utc(2026, 3, 2, 8), "skipped")]
    assert weekly[0].window_start == utc(2026, 3, 1, 12)
    assert weekly[0].window_end == utc(2026, 3, 9, 8)
    assert weekly[0].edition_id == "weekly-20260309T080000Z"
    assert "min_articles is 1" in (weekly[1].reason or "")

    # A second scheduler (or a restart) replaying the same week does nothing.
    replay = Simulation(any_store, sim.schedules, sim.files)
    replay.run(utc(2026, 3, 1, 12), utc(2026, 3, 9, 12), HOUR)
    assert replay.actions.calls == []


def test_restart_catches_up_within_max_lateness_and_skips_beyond(any_store: Store) -> None:
    parsed = schedules("""\
        schedules:
          - id: daily
            kind: digest
            cron: "0 8 * * *"
            max_lateness: 6h
            audience: [weekly]
        """.replace("        ", "", 1).replace("\n        ", "\n"))
    files = [Written(article(f"d{day}", utc(2026, 3, day, 12)), utc(2026, 3, day, 12))
             for day in range(2, 8)]
    calls = []
    # Each uptime is a new process: everything it knows comes from the store.
    for start, end in [(utc(2026, 3, 2, 0), utc(2026, 3, 3, 7)),    # down Tue 07:00-13:00
                       (utc(2026, 3, 3, 13), utc(2026, 3, 4, 7)),   # down Wed 07:00-Thu 15:00
                       (utc(2026, 3, 5, 15), utc(2026, 3, 7, 9))]:
        sim = Simulation(any_store, parsed, files)
        sim.run(start, end, HOUR)
        calls += sim.actions.calls

    assert calls == [
        # Tuesday 08:00 was 5 h late at 13:00 (within 6 h): sent once, late.
        ("digest", "daily", ("d2",), utc(2026, 3, 3, 13)),
        # Wednesday and Thursday were missed beyond 6 h: nothing sent late.
        # Friday's digest holds everything since Tuesday's, so nothing is lost.
        ("digest", "daily", ("d5", "d4", "d3"), utc(2026, 3, 6, 8)),
        ("digest", "daily", ("d6",), utc(2026, 3, 7, 8)),
    ]
    by_day = {r.fire_time.day: r for r in firings.runs(any_store, "daily")}
    assert by_day[2].status == "skipped"
    assert by_day[3].status == "sent" and by_day[3].recorded_at == utc(2026, 3, 3, 13)
    assert by_day[4].status == "skipped" and by_day[4].reason == (
        "missed by 1d7h (max_lateness 6h); not sent late")
    assert by_day[5].status == "skipped" and by_day[5].reason == (
        "missed by 7h (max_lateness 6h); not sent late")
    assert by_day[6].window_start == utc(2026, 3, 3, 8)


def test_missed_firings_coalesce_into_the_latest(store: Store) -> None:
    parsed = schedules("schedules:\n  - id: f\n    kind: feeds\n    cron: '0 */6 * * *'\n"
                       "    max_lateness: 2d\n")
    sim = Simulation(store, parsed)
    sim.step(utc(2026, 3, 2, 0, 30))
    reports = sim.step(utc(2026, 3, 3, 13))  # a day and a half later
    assert [(r.fire_time.hour, r.fire_time.day, r.outcome) for r in reports] == [
        (6, 2, "skipped"), (12, 2, "skipped"), (18, 2, "skipped"), (0, 3, "skipped"),
        (6, 3, "skipped"), (12, 3, "sent")]
    assert reports[0].detail.startswith("coalesced: the firing at 2026-03-03 12:00 GMT")
    assert len(sim.calls("feeds")) == 1


def test_quiet_hours_hold_sends_until_the_window_ends(store: Store) -> None:
    parsed = schedules("""\
        quiet_hours: "21:00-07:00"
        schedules:
          - id: alerts
            kind: article
            on_publish: true
            delay: 2h
            audience: [all]
          - id: late-digest
            kind: digest
            cron: "0 23 * * *"
            audience: [all]
          - id: feeds
            kind: feeds
            cron: "0 23 * * *"
        """.replace("\n        ", "\n").lstrip())
    sim = Simulation(store, parsed)
    sim.files = [Written(article("evening", utc(2026, 3, 2, 20)), utc(2026, 3, 2, 20))]
    sim.run(utc(2026, 3, 2, 12), utc(2026, 3, 3, 12), timedelta(minutes=30))
    assert [(c[0], c[3]) for c in sim.actions.calls] == [
        ("feeds", utc(2026, 3, 2, 23)),        # feeds reach nobody's inbox: not held
        ("article", utc(2026, 3, 3, 7)),       # due 22:00, held until 07:00
        ("digest", utc(2026, 3, 3, 7)),        # due 23:00, held until 07:00
    ]
    waiting = [r for r in sim.reports if r.outcome == "waiting"]
    assert waiting and "starts at 2026-03-03 07:00 GMT" in waiting[0].detail


def test_paused_schedule_records_skips_and_sends_nothing(store: Store) -> None:
    parsed = schedules("schedules:\n  - id: f\n    kind: feeds\n    cron: '0 8 * * *'\n"
                       "    enabled: false\n")
    sim = Simulation(store, parsed)
    sim.run(utc(2026, 3, 2, 0), utc(2026, 3, 3, 12), HOUR)
    assert sim.actions.calls == []
    assert {(r.status, r.reason) for r in firings.runs(store, "f")} == {
        ("skipped", "paused (enabled: false)")}


def test_a_failed_firing_is_recorded_and_never_repeated(store: Store) -> None:
    parsed = schedules("schedules:\n  - id: f\n    kind: feeds\n    cron: '0 8 * * *'\n")
    sim = Simulation(store, parsed, actions=RecordingActions(fail_on={"f"}))
    sim.run(utc(2026, 3, 2, 7), utc(2026, 3, 2, 12), HOUR)
    assert [(r.outcome, r.detail) for r in sim.reports] == [("failed", "feeds failed on purpose")]
    assert firings.runs(store, "f")[0].status == "failed"


def test_ticks_at_the_same_instant_fire_once(store: Store) -> None:
    parsed = schedules("schedules:\n  - id: f\n    kind: feeds\n    cron: '0 8 * * *'\n")
    actions = RecordingActions()
    tick(store, parsed, [], utc(2026, 3, 2, 7), actions)
    first = tick(store, parsed, [], utc(2026, 3, 2, 8), actions)
    again = tick(store, parsed, [], utc(2026, 3, 2, 8), actions)
    assert [r.outcome for r in first] == ["sent"] and again == []
    assert len(actions.calls) == 1


def test_filters_and_email_opt_out(store: Store) -> None:
    parsed = schedules("""\
        schedules:
          - id: heart
            kind: digest
            cron: "0 8 * * *"
            audience: [all]
            categories: [heart health]
            max_articles: 2
        """.replace("\n        ", "\n").lstrip())
    sim = Simulation(store, parsed)
    sim.files = [
        Written(article("h1", utc(2026, 3, 2, 9), category="Heart health"), utc(2026, 3, 2, 9)),
        Written(article("h2", utc(2026, 3, 2, 10), category="Heart health"), utc(2026, 3, 2, 10)),
        Written(article("h3", utc(2026, 3, 2, 11), category="Heart health"), utc(2026, 3, 2, 11)),
        Written(article("quiet", utc(2026, 3, 2, 11), category="Heart health", email=False),
                utc(2026, 3, 2, 11)),
        Written(article("lungs", utc(2026, 3, 2, 12), category="Lungs"), utc(2026, 3, 2, 12)),
    ]
    sim.run(utc(2026, 3, 2, 0), utc(2026, 3, 3, 8), HOUR)
    assert sim.calls("digest") == [("digest", "heart", ("h3", "h2"), utc(2026, 3, 3, 8))]


def test_trigger_now_is_manual_once_and_advances_the_window(store: Store) -> None:
    parsed = schedules("schedules:\n  - id: w\n    kind: digest\n    cron: '0 8 * * mon'\n"
                       "    audience: [all]\n")
    schedule = parsed.schedules[0]
    sim = Simulation(store, parsed)
    sim.files = [Written(article("x", utc(2026, 3, 3, 9)), utc(2026, 3, 3, 9))]
    sim.run(utc(2026, 3, 3, 0), utc(2026, 3, 4, 0), HOUR)
    actions = RecordingActions()
    now = utc(2026, 3, 4, 10, 15, 30, 123)
    fired = trigger_now(store, schedule, sim.visible(now), now, actions)
    assert fired is not None and fired.outcome == "sent"
    assert trigger_now(store, schedule, sim.visible(now), now, actions) is None
    assert actions.calls == [("digest", "w", ("x",), now)]
    run = firings.runs(store, "w")[0]
    assert run.origin == "manual" and run.edition_id == "w-20260304T101530Z"
    # The Monday digest starts where the manual one ended: x is not sent twice.
    sim.run(utc(2026, 3, 9, 8), utc(2026, 3, 9, 8), HOUR)
    assert sim.calls("digest") == []


@pytest.mark.parametrize(("zone", "night", "expected_utc"), [
    ("America/New_York", utc(2026, 11, 1), [utc(2026, 11, 1, 5, 30)]),   # fall back
    ("America/New_York", utc(2026, 3, 8), [utc(2026, 3, 8, 6, 30)]),     # spring forward
    ("Europe/London", utc(2026, 10, 25), [utc(2026, 10, 25, 0, 30)]),    # fall back
    ("Europe/London", utc(2026, 3, 29), [utc(2026, 3, 29, 1, 0)]),       # 01:30: at the change
])
def test_a_daily_0130_job_fires_once_on_dst_nights(store: Store, zone: str, night: object,
                                                   expected_utc: list[object]) -> None:
    parsed = schedules(f"timezone: {zone}\nschedules:\n  - id: d\n    kind: feeds\n"
                       "    cron: '30 1 * * *'\n")
    sim = Simulation(store, parsed)
    assert isinstance(night, type(utc(2026, 1, 1)))
    sim.run(night - timedelta(hours=6), night + timedelta(hours=14), timedelta(minutes=15))
    assert [c[3] for c in sim.calls("feeds")] == expected_utc


def test_editing_a_schedule_never_makes_a_past_firing_due(store: Store) -> None:
    before = schedules("schedules:\n  - id: d\n    kind: feeds\n    cron: '0 8 * * mon'\n")
    after = schedules("schedules:\n  - id: d\n    kind: feeds\n    cron: '0 7 * * *'\n")
    sim = Simulation(store, before)
    sim.run(utc(2026, 3, 2, 0), utc(2026, 3, 4, 9), HOUR)   # Monday 08:00 fires
    # Wednesday 09:00: staff change it to daily 07:00. Today's 07:00 is in the
    # past and within max_lateness, but it was not a firing when it passed.
    sim.schedules = after
    sim.run(utc(2026, 3, 4, 9), utc(2026, 3, 5, 8), HOUR)
    assert [c[3] for c in sim.calls("feeds")] == [utc(2026, 3, 2, 8), utc(2026, 3, 5, 7)]
