"""What survives a crash: interrupted firings, the last good schedules.yaml,
and failures that must not pass for successes. Real stores, real outbox."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.schedulekit import article, schedules, utc
from tests.sitekit import write_site

from dispatch.config import Settings, load_settings
from dispatch.errors import TemplateError
from dispatch.models import Article
from dispatch.render.env import render_subject
from dispatch.schedule import firings
from dispatch.schedule.actions import SiteActions
from dispatch.schedule.decide import decide_timed
from dispatch.schedule.engine import (
    calendar_key,
    failure_reason,
    plan_firing,
    published_with_seen,
    tick,
    trigger_now,
)
from dispatch.schedule.model import ScheduleSet
from dispatch.schedule.runner import SchedulerService
from dispatch.schedule.sitefile import last_good_path
from dispatch.store.articles import record_publications
from dispatch.store.engine import Store, open_store
from dispatch.store.schema import editions, outbox
from dispatch.subscribers import add_subscriber

WEEKLY = """\
schedules:
  - id: weekly
    kind: digest
    cron: "0 8 * * mon"
    audience: [weekly]
    subject: "{{ articles | length }} new"
"""


def make_site(root: Path, extra_toml: str = "") -> Settings:
    return load_settings(write_site(root, toml=extra_toml))


def weekly_with_a1(root: Path, store: Store, readers: tuple[str, ...] = ("ana",)
                   ) -> tuple[SiteActions, ScheduleSet, Article]:
    """The weekly digest begun on 2 March, then article a1 published on the 3rd."""
    actions = SiteActions(make_site(root), store)
    for name in readers:
        add_subscriber(store, f"{name}@example.com", "weekly", utc(2026, 3, 1))
    parsed = schedules(WEEKLY)
    a1 = article("a1", utc(2026, 3, 3, 9))
    record_publications(store, [], utc(2026, 3, 2, 9))
    assert tick(store, parsed, [], utc(2026, 3, 2, 9), actions) == []  # begins here
    record_publications(store, [a1], utc(2026, 3, 3, 9))
    return actions, parsed, a1


def crash_after(step: str, store: Store, text: str, written: list[Article], now: datetime,
                actions: SiteActions) -> None:
    """Run the scheduled firing due at ``now`` the way ``engine.carry_out``
    does, but stop (as a killed process would) after ``step``:
    "plan" (claimed and planned, nothing queued) or "queue" (queued, not finished)."""
    parsed = schedules(text)
    schedule = parsed.schedules[0]
    known = firings.remember(store, {schedule.id: calendar_key(schedule)}, now)[schedule.id]
    base = known.baseline
    since = max(base, known.last_fire_time) if known.last_fire_time else base
    (decision,) = decide_timed(schedule, since, now)
    published = published_with_seen(store, written, now)
    key = (schedule.id, decision.fire_time, "")
    assert firings.claim(store, *key, now)
    plan = plan_firing(store, schedule, decision, published, base)
    firings.record_plan(store, *key, window=plan.window, edition_id=plan.edition_id,
                        articles=plan.slugs)
    if step == "queue":
        assert plan.edition_id is not None
        actions.send_digest(schedule, plan.articles, plan.edition_id, decision.fire_time, now)


def _editions(store: Store) -> dict[str, tuple[str, ...]]:
    with store.read() as conn:
        rows = conn.execute(select(editions.c.edition_id, editions.c.body)).all()
    return {eid: tuple(json.loads(body)["article_slugs"]) for eid, body in rows}


def test_a_crash_after_queueing_never_sends_the_same_articles_again(
        tmp_path: Path, any_store: Store) -> None:
    actions, parsed, a1 = weekly_with_a1(tmp_path / "site", any_store, ("ana", "ben"))
    a2 = article("a2", utc(2026, 3, 11, 9))

    # Monday 9th 08:00: the digest with a1 is queued, then the process dies.
    crash_after("queue", any_store, WEEKLY, [a1], utc(2026, 3, 9, 8), actions)
    (run,) = firings.runs(any_store, "weekly")
    assert run.status == "running" and run.edition_id == "weekly-20260309T080000Z"

    # A new process; a2 is published; the next Monday's digest.
    record_publications(any_store, [a1, a2], utc(2026, 3, 11, 9))
    reports = tick(any_store, parsed, [a1, a2], utc(2026, 3, 16, 8), actions)
    assert [(r.fire_time, r.outcome) for r in reports] == [
        (utc(2026, 3, 9, 8), "sent"), (utc(2026, 3, 16, 8), "sent")]
    assert "recovered after an interruption" in reports[0].detail
    assert _editions(any_store) == {"weekly-20260309T080000Z": ("a1",),
                                    "weekly-20260316T080000Z": ("a2",)}
    by_day = {r.fire_time.day: r for r in firings.runs(any_store, "weekly")}
    assert by_day[9].status == "sent" and by_day[9].window_end == utc(2026, 3, 9, 8)
    assert by_day[16].window_start == utc(2026, 3, 9, 8)
    with any_store.read() as conn:  # really queued, once per subscriber per edition
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 4


def test_a_crash_before_queueing_is_redone_once_by_the_next_leader(
        tmp_path: Path, any_store: Store) -> None:
    """The weekly digest must not be lost to a leader killed between its plan and its queue."""
    actions, parsed, a1 = weekly_with_a1(tmp_path / "site", any_store, ("ana", "ben"))

    crash_after("plan", any_store, WEEKLY, [a1], utc(2026, 3, 9, 8), actions)
    # Moments later (the firing's lease is still held; its leader could be
    # working on it): left alone.
    assert tick(any_store, parsed, [a1], utc(2026, 3, 9, 8, 1), actions) == []
    assert firings.runs(any_store, "weekly")[0].status == "running"
    # Once the lease expired, within max_lateness (6 h): done again, once.
    reports = tick(any_store, parsed, [a1], utc(2026, 3, 9, 9), actions)
    assert [(r.fire_time, r.outcome) for r in reports] == [(utc(2026, 3, 9, 8), "sent")]
    assert reports[0].detail.startswith("redone after an interruption: ")
    (run,) = firings.runs(any_store, "weekly")
    assert (run.status, run.attempts, run.window_end) == ("sent", 2, utc(2026, 3, 9, 8))
    assert _editions(any_store) == {"weekly-20260309T080000Z": ("a1",)}
    assert tick(any_store, parsed, [a1], utc(2026, 3, 9, 10), actions) == []
    with any_store.read() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 2
    # The next week's digest does not repeat a1.
    tick(any_store, parsed, [a1], utc(2026, 3, 16, 8), actions)
    assert set(_editions(any_store)) == {"weekly-20260309T080000Z"}


def test_a_crash_before_queueing_found_too_late_is_reported_and_its_articles_go_next_time(
        tmp_path: Path, any_store: Store) -> None:
    actions, parsed, a1 = weekly_with_a1(tmp_path / "site", any_store)

    crash_after("plan", any_store, WEEKLY, [a1], utc(2026, 3, 9, 8), actions)
    # Found only after max_lateness (6 h): not sent late; failed, with the reason.
    reports = tick(any_store, parsed, [a1], utc(2026, 3, 9, 15), actions)
    assert [(r.fire_time, r.outcome) for r in reports] == [(utc(2026, 3, 9, 8), "failed")]
    assert "interrupted before anything was queued" in reports[0].detail
    assert "not done again: missed by 7h (max_lateness 6h)" in reports[0].detail
    (run,) = firings.runs(any_store, "weekly")
    assert run.status == "failed" and run.window_end is None
    # Nothing was sent, so a1 goes in the next digest instead of being lost.
    tick(any_store, parsed, [a1], utc(2026, 3, 16, 8), actions)
    assert _editions(any_store) == {"weekly-20260316T080000Z": ("a1",)}


def test_the_last_good_schedules_survive_a_restart_with_a_broken_file(tmp_path: Path) -> None:
    settings = make_site(tmp_path / "site")
    path = settings.root / "schedules.yaml"
    path.write_text(WEEKLY)
    store = open_store(settings.database_url)
    add_subscriber(store, "ana@example.com", "weekly", utc(2026, 3, 1))
    service = SchedulerService(settings, store, lambda: utc(2026, 3, 2, 7))
    assert [s.id for s in service.schedules.schedules] == ["weekly"]
    assert last_good_path(settings).read_text() == WEEKLY

    # Staff save a broken edit; then the machine restarts (or a standby
    # takes over) before anyone fixes it.
    path.write_text(WEEKLY.replace('"0 8 * * mon"', '"0 8 * * MONDAY"'))
    restarted = SchedulerService(settings, store, lambda: utc(2026, 3, 2, 7))
    assert [s.id for s in restarted.schedules.schedules] == ["weekly"]
    assert str(restarted.schedules.schedules[0].trigger) == "cron 0 8 * * mon"
    said = [str(p) for p in restarted.problems]
    assert any("is not a cron expression" in line for line in said)
    assert any("stays in force until they are fixed" in line and
               "schedules.last-good.yaml" in line for line in said)
    assert restarted.reload() == (False, [])  # reported once, at start-up

    # The fix is picked up, and becomes the new last good version.
    fixed = WEEKLY.replace('"0 8 * * mon"', '"30 9 * * tue"')
    path.write_text(fixed)
    changed, problems = restarted.reload()
    assert changed and problems == []
    assert str(restarted.schedules.schedules[0].trigger) == "cron 30 9 * * tue"
    assert last_good_path(settings).read_text() == fixed
    store.dispose()


def test_with_no_last_good_copy_a_broken_file_keeps_its_valid_schedules(
        tmp_path: Path) -> None:
    settings = make_site(tmp_path / "site")
    (settings.root / "schedules.yaml").write_text(
        WEEKLY + "  - id: broken\n    kind: feeds\n    cron: nope\n")
    store = open_store(settings.database_url)
    add_subscriber(store, "ana@example.com", "weekly", utc(2026, 3, 1))
    service = SchedulerService(settings, store, lambda: utc(2026, 3, 2, 7))
    assert [s.id for s in service.schedules.schedules] == ["weekly"]
    assert not last_good_path(settings).exists()  # never saved with errors
    store.dispose()


def test_a_subject_failure_says_subject_once() -> None:
    with pytest.raises(TemplateError) as caught:
        render_subject("{{ site.titel }}", {"site": {"title": "T"}})
    reason = failure_reason(caught.value)
    assert reason.startswith("subject: '{{ site.titel }}': ")
    assert "subject: subject:" not in reason


def test_a_social_firing_that_could_write_no_post_is_a_failed_firing(
        tmp_path: Path, any_store: Store) -> None:
    settings = make_site(tmp_path / "site", '\n[social]\non_publish = false\n\n'
                         '[social.tiny]\nnetwork = "bluesky"\ntransport = "capture"\n'
                         'limit = 40\n')
    long_slug = "a-slug-far-too-long-for-a-forty-character-post"
    item = article(long_slug, utc(2026, 3, 2, 9))
    parsed = schedules("schedules:\n  - id: social\n    kind: social\n    on_publish: true\n")
    actions = SiteActions(settings, any_store)
    record_publications(any_store, [], utc(2026, 3, 2, 8))
    tick(any_store, parsed, [], utc(2026, 3, 2, 8), actions)
    record_publications(any_store, [item], utc(2026, 3, 2, 9))
    (report,) = tick(any_store, parsed, [item], utc(2026, 3, 2, 9), actions)
    assert report.outcome == "failed"
    assert report.detail.startswith("no social post could be written: ")
    assert "over the limit of 40" in report.detail
    (run,) = firings.runs(any_store, "social")
    assert run.status == "failed" and run.reason == report.detail


def test_a_manual_firing_finishes_a_running_row_it_recovers(tmp_path: Path,
                                                            any_store: Store) -> None:
    """carry_out through `dispatch trigger`'s path also settles stale rows first."""
    actions, parsed, a1 = weekly_with_a1(tmp_path / "site", any_store)
    crash_after("queue", any_store, WEEKLY, [a1], utc(2026, 3, 9, 8), actions)
    fired = trigger_now(any_store, parsed.schedules[0], [a1], utc(2026, 3, 9, 8, 30), actions)
    assert fired is not None and fired.outcome == "skipped"  # a1 went out at 08:00
    assert "0 new articles since" in fired.detail
    assert {r.status for r in firings.runs(any_store, "weekly")} == {"sent", "skipped"}
