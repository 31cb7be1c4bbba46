"""One active scheduler per database, standby take-over, and no double firing.

Waits here are on events with generous timeouts; nothing asserts on timing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from tests.schedulekit import Written, article, schedules, utc

from dispatch.config import load_settings
from dispatch.schedule import firings
from dispatch.schedule.actions import RecordingActions
from dispatch.schedule.engine import tick
from dispatch.schedule.leader import FileLeadership, PostgresLeadership, leadership_for
from dispatch.schedule.runner import serve
from dispatch.store.articles import record_publications
from dispatch.store.engine import Store, open_store

WAIT = 60.0


def test_file_lock_elects_one_leader_and_frees_on_release(tmp_path: Path) -> None:
    first, second = FileLeadership(tmp_path / "lock"), FileLeadership(tmp_path / "lock")
    assert first.try_acquire()
    assert not second.try_acquire()
    first.release()
    assert second.try_acquire()
    second.release()


def test_sqlite_lock_sits_beside_the_database(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'db' / 'state.db'}")
    leader = leadership_for(store, tmp_path / "state")
    assert isinstance(leader, FileLeadership)
    assert leader.path == tmp_path / "db" / "state.db.scheduler-lock"
    store.dispose()


@pytest.fixture
def pg_stores(postgres_url: str) -> Iterator[tuple[Store, Store]]:
    """Two independent engines on one PostgreSQL schema: two processes' worth."""
    a, b = open_store(postgres_url), open_store(postgres_url)
    yield a, b
    a.dispose()
    b.dispose()


def test_postgres_advisory_lock_and_take_over_when_the_leader_dies(
        pg_stores: tuple[Store, Store]) -> None:
    a, b = pg_stores
    leader, standby = PostgresLeadership(a), PostgresLeadership(b)
    assert leader.try_acquire() and leader.still_held()
    assert not standby.try_acquire()
    # The leader's session dies (crash, network, admin): the server drops the lock.
    with b.engine.connect() as conn:
        key = standby.lock_key(conn) & 0xFFFFFFFF
        pid = conn.execute(text(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND objid = :k AND database = (SELECT oid FROM pg_database "
            "WHERE datname = current_database())"), {"k": key}).scalar_one()
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
        conn.commit()
    assert not leader.still_held()
    assert standby.try_acquire()
    assert not leader.try_acquire()
    standby.release()
    leader.release()


def test_two_schedulers_on_one_postgres_never_fire_twice(
        pg_stores: tuple[Store, Store]) -> None:
    parsed = schedules("""\
schedules:
  - id: hourly
    kind: feeds
    cron: "0 * * * *"
  - id: alerts
    kind: article
    on_publish: true
    delay: 1h
    audience: [all]
""")
    files = [Written(article(f"a{h}", utc(2026, 3, 2, h, 10)), utc(2026, 3, 2, h, 10))
             for h in range(1, 20, 3)]
    actions = [RecordingActions(), RecordingActions()]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def scheduler(index: int) -> None:
        store = pg_stores[index]
        try:
            now = utc(2026, 3, 2, 0)
            while now <= utc(2026, 3, 3, 0):
                visible = [w.article for w in files if w.created <= now]
                barrier.wait(timeout=WAIT)  # both look at the same instant
                record_publications(store, visible, now)
                tick(store, parsed, visible, now, actions[index])
                now += timedelta(minutes=20)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=scheduler, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 2)
    assert not errors
    calls = actions[0].calls + actions[1].calls
    feeds = sorted(c[3] for c in calls if c[0] == "feeds")
    assert feeds == [utc(2026, 3, 2, h) for h in range(1, 24)] + [utc(2026, 3, 3, 0)]
    alerts = sorted(c[2] for c in calls if c[0] == "article")
    assert alerts == sorted((f"a{h}",) for h in range(1, 20, 3))
    # Both did real work: the unique key, not luck, kept it once.
    assert actions[0].calls and actions[1].calls
    assert len(firings.runs(pg_stores[0], limit=10_000)) == len(calls)


def _site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "content").mkdir(parents=True)
    (root / "dispatch.toml").write_text('[site]\nurl = "https://journal.test"\n')
    (root / "schedules.yaml").write_text(
        "schedules:\n  - id: f\n    kind: feeds\n    cron: '0 8 * * *'\n")
    return root


def test_serve_runs_one_leader_and_a_standby_takes_over(tmp_path: Path,
                                                        database_url: str) -> None:
    settings = load_settings(_site(tmp_path))
    store = open_store(database_url)
    clock = [utc(2026, 3, 2, 7)]
    messages: dict[str, list[str]] = {"a": [], "b": []}
    passed = {"a": threading.Event(), "b": threading.Event()}
    stops = {"a": threading.Event(), "b": threading.Event()}

    def start(name: str) -> threading.Thread:
        thread = threading.Thread(target=serve, args=(settings, store, stops[name],
                                                      lambda: clock[0]), kwargs={
            "interval": 3600, "standby_poll": 0.05, "say": messages[name].append,
            "actions": RecordingActions(), "report": lambda _r: passed[name].set()})
        thread.start()
        return thread

    first = start("a")
    assert passed["a"].wait(WAIT)  # the leader ran its start-up pass
    second = start("b")
    while not any(m.startswith("standby") for m in messages["b"]):
        assert second.is_alive()
        threading.Event().wait(0.01)
    assert not passed["b"].is_set()
    clock[0] = utc(2026, 3, 2, 8)
    stops["a"].set()
    first.join(WAIT)
    assert passed["b"].wait(WAIT)  # the standby became leader and ran a pass
    assert "leader: this process runs the schedules" in messages["b"]
    stops["b"].set()
    second.join(WAIT)
    assert not first.is_alive() and not second.is_alive()
    # The 08:00 firing happened once, in the process that led at 08:00.
    assert [(r.schedule_id, r.fire_time, r.status) for r in firings.runs(store)] == [
        ("f", utc(2026, 3, 2, 8), "sent")]
    store.dispose()


def test_apscheduler_jobs_are_set_up_against_its_pitfalls(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    from apscheduler.jobstores.memory import MemoryJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    from dispatch.schedule.runner import SchedulerService, install_jobs

    root = _site(tmp_path)
    (root / "schedules.yaml").write_text("""\
timezone: America/New_York
schedules:
  - id: daily
    kind: feeds
    cron: "30 1 * * 1-5"
    max_lateness: 2h
  - id: paused
    kind: feeds
    every: 1h
    enabled: false
  - id: alerts
    kind: social
    on_publish: true
""")
    settings = load_settings(root)
    store = open_store(settings.database_url)
    service = SchedulerService(settings, store, lambda: utc(2026, 3, 2), RecordingActions())
    scheduler = BackgroundScheduler(jobstores={"default": MemoryJobStore()})
    install_jobs(scheduler, service, service.schedules, 60)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"pass", "schedule:daily"}  # paused: none; on-publish: the pass
    daily = jobs["schedule:daily"]
    assert daily.misfire_grace_time == 7200 and daily.coalesce and daily.max_instances == 1
    # APScheduler only relays our own firing times: Monday 01:30 EST, then Tuesday's
    # ("1-5" is Monday to Friday, as in crontab; APScheduler 3.x would start at Tuesday).
    first = daily.trigger.get_next_fire_time(None, utc(2026, 3, 2))
    assert first == utc(2026, 3, 2, 6, 30)
    assert first.astimezone(ZoneInfo("America/New_York")).strftime("%a %H:%M") == "Mon 01:30"
    assert daily.trigger.get_next_fire_time(first, first) == utc(2026, 3, 3, 6, 30)
    install_jobs(scheduler, service, service.schedules, 60)  # a reload replaces, never adds
    assert len(scheduler.get_jobs()) == 2
    store.dispose()


def test_a_one_off_date_already_past_gives_apscheduler_nothing_to_run_late() -> None:
    from dispatch.schedule.runner import NextFiring

    parsed = schedules("schedules:\n  - id: once\n    kind: feeds\n    at: 2026-11-01 09:00\n"
                       "    timezone: UTC\n")
    waker = NextFiring(parsed.schedules[0])
    # APScheduler's own DateTrigger answers the past date, then logs "was missed by".
    assert waker.get_next_fire_time(None, utc(2026, 12, 3)) is None
    assert waker.get_next_fire_time(None, utc(2026, 10, 1)) == utc(2026, 11, 1, 9)
