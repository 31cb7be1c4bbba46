"""SIGKILL the scheduler leader at each step of a firing; the next leader
must finish the firing exactly once: one edition, one copy per reader.

Steps (the firing's lease is taken when its row is recorded):
after the plan row, in the middle of queueing (the edition's transaction
is open), after queueing, and just before the firing is marked done.
Real processes, a real SQLite file and the real PostgreSQL.
"""

from __future__ import annotations

import email
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import column, delete, func, insert, select, table, text
from tests.schedulekit import article, schedules, utc
from tests.sitekit import build_site

from dispatch.config import Settings
from dispatch.delivery import captured, deliver
from dispatch.schedule import firings
from dispatch.schedule.actions import SiteActions
from dispatch.schedule.engine import tick
from dispatch.store.articles import record_publications
from dispatch.store.engine import Store, open_store
from dispatch.store.schema import UTCDateTime, editions, outbox, schema_migrations
from dispatch.subscribers import add_subscriber

REPO = Path(__file__).resolve().parent.parent
READERS = ("ana", "ben", "cho")
WEEKLY = """\
schedules:
  - id: weekly
    kind: digest
    cron: "0 8 * * mon"
    audience: [weekly]
    subject: "{{ articles | length }} new"
"""
FIRE = utc(2026, 3, 9, 8)
EDITION = "weekly-20260309T080000Z"

# The leader: the same tick the scheduler runs, with the step to die at
# patched in (SIGKILL: no cleanup, no finally, no atexit).
LEADER = """
import os, signal, sys
from pathlib import Path
from tests.schedulekit import article, schedules, utc
from dispatch.config import load_settings
from dispatch.schedule import engine, firings
from dispatch.schedule.actions import SiteActions
from dispatch.store import open_store
import dispatch.outbox.queue as outbox_queue

root, url, step, text = sys.argv[1:5]

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

def then_die(fn):
    def wrapped(*args, **kwargs):
        fn(*args, **kwargs)
        die()
    return wrapped

if step == "after-plan":
    firings.record_plan = then_die(firings.record_plan)
elif step == "while-queueing":
    # Called inside queue_edition's transaction, after the edition row was
    # inserted and before its recipients' rows are: dies with it uncommitted.
    outbox_queue._members = die
elif step == "after-queueing":
    SiteActions.send_digest = then_die(SiteActions.send_digest)
elif step == "before-done":
    firings.finish = die
settings = load_settings(Path(root))
store = open_store(url)
a1 = article("a1", utc(2026, 3, 3, 9))
engine.tick(store, schedules(text), [a1], utc(2026, 3, 9, 8), SiteActions(settings, store))
print("survived")
"""


@pytest.fixture
def site(tmp_path: Path, database_url: str,
         monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, Store, str]:
    monkeypatch.setenv("DISPATCH_SECRET_KEY", "test-secret")
    settings, store = build_site(tmp_path / "site", database_url=database_url)
    for name in READERS:
        add_subscriber(store, f"{name}@example.com", "weekly", utc(2026, 3, 1))
    # The weekly digest begins on 2 March; a1 is published on the 3rd.
    record_publications(store, [], utc(2026, 3, 2, 9))
    assert tick(store, schedules(WEEKLY), [], utc(2026, 3, 2, 9),
                SiteActions(settings, store)) == []
    record_publications(store, [article("a1", utc(2026, 3, 3, 9))], utc(2026, 3, 3, 9))
    return settings, store, database_url


def kill_leader_at(step: str, root: Path, url: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(REPO), str(REPO / "src")))}
    done = subprocess.run([sys.executable, "-c", LEADER, str(root), url, step, WEEKLY],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, (done.stdout, done.stderr)


def edition_rows(store: Store) -> dict[str, Counter[int]]:
    with store.read() as conn:
        rows = conn.execute(select(outbox.c.edition_id, outbox.c.subscriber_id)).all()
    out: dict[str, Counter[int]] = {}
    for eid, sid in rows:
        out.setdefault(eid, Counter())[sid] += 1
    return out


def held(store: Store) -> dict[str, tuple[str, ...]]:
    with store.read() as conn:
        rows = conn.execute(select(editions.c.edition_id, editions.c.body)).all()
    return {eid: tuple(json.loads(body)["article_slugs"]) for eid, body in rows}


@pytest.mark.slow
@pytest.mark.parametrize("step", ["after-plan", "while-queueing", "after-queueing",
                                  "before-done"])
def test_a_leader_killed_mid_firing_is_finished_once_by_the_next(
        site: tuple[Settings, Store, str], step: str) -> None:
    settings, store, url = site
    kill_leader_at(step, settings.root, url)
    (run,) = firings.runs(store, "weekly")
    assert run.status == "running" and run.fire_time == FIRE
    queued_before = edition_rows(store)
    if step in ("after-plan", "while-queueing"):
        assert queued_before == {} and held(store) == {}  # nothing had been queued
    else:
        assert set(queued_before) == {EDITION}

    # The next leader, once the dead one's lease (2 minutes) has expired.
    parsed, a1 = schedules(WEEKLY), article("a1", utc(2026, 3, 3, 9))
    actions = SiteActions(settings, store)
    assert tick(store, parsed, [a1], utc(2026, 3, 9, 8, 1), actions) == []  # lease still held
    reports = tick(store, parsed, [a1], utc(2026, 3, 9, 8, 5), actions)
    assert [(r.fire_time, r.outcome) for r in reports] == [(FIRE, "sent")]
    (run,) = firings.runs(store, "weekly")
    assert (run.status, run.attempts, run.edition_id) == ("sent", 2, EDITION)
    assert run.window_end == FIRE

    # Exactly one edition for the firing, one row per reader, whoever queued it.
    assert held(store) == {EDITION: ("a1",)}
    rows = edition_rows(store)
    assert set(rows) == {EDITION} and len(rows[EDITION]) == len(READERS)
    assert set(rows[EDITION].values()) == {1}
    # Later passes (and next week's digest, with nothing new) add nothing.
    assert tick(store, parsed, [a1], utc(2026, 3, 9, 12), actions) == []
    tick(store, parsed, [a1], utc(2026, 3, 16, 8), actions)
    assert set(held(store)) == {EDITION}

    # Delivered: one message per reader, nobody twice.
    report = deliver(store, settings, utc(2026, 3, 9, 8, 6))
    assert report.sent == len(READERS)
    maildir = settings.state_dir / "maildir"
    got = Counter(email.message_from_bytes(p.read_bytes())["Delivered-To"]
                  for p in captured(maildir))
    assert got == Counter(f"{name}@example.com" for name in READERS)
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)
                            .where(outbox.c.status == "sent")).scalar_one() == len(READERS)
    store.dispose()


def test_only_one_of_two_leaders_takes_an_interrupted_firing_over(
        site: tuple[Settings, Store, str]) -> None:
    _, store, url = site
    assert firings.claim(store, "weekly", FIRE, "", FIRE) is not None
    (run,) = firings.runs(store, "weekly")
    assert firings.interrupted(store, utc(2026, 3, 9, 8, 1)) == []  # lease still held
    other = open_store(url)
    try:
        later = utc(2026, 3, 9, 8, 3)
        first = firings.take_over(store, run, later)
        second = firings.take_over(other, run, later)
        assert first is not None and second is None
        # The dead leader's token can no longer write; the new holder's can.
        assert not firings.finish(store, *run.key, later, status=firings.Status.SENT,
                                  token="scheduler/dead")
        assert firings.finish(store, *run.key, later, status=firings.Status.SENT, token=first)
    finally:
        other.dispose()
    store.dispose()


def test_a_firing_left_running_by_the_previous_version_is_taken_over(
        database_url: str) -> None:
    """A database from before firings had leases: its columns are added, and a
    row it left running counts as interrupted once it is ten minutes old."""
    store = open_store(database_url)
    with store.write() as conn:
        for name in ("lease_owner", "lease_until", "attempts"):
            conn.execute(text(f'ALTER TABLE schedule_runs DROP COLUMN "{name}"'))
        conn.execute(delete(schema_migrations).where(
            schema_migrations.c.id == "schedule_0002_firing_leases"))
        # The table as that version had it (no lease columns, no defaults for them).
        old = table("schedule_runs", column("schedule_id"), column("fire_time", UTCDateTime()),
                    column("article"), column("status"), column("origin"), column("articles"),
                    column("recorded_at", UTCDateTime()))
        conn.execute(insert(old).values(schedule_id="weekly", fire_time=FIRE, article="",
                                        status="running", origin="schedule", articles="[]",
                                        recorded_at=FIRE))
    assert store.migrate() == ["schedule_0002_firing_leases"]
    (run,) = firings.runs(store, "weekly")
    assert (run.status, run.attempts, run.lease_until) == ("running", 1, None)
    assert firings.interrupted(store, utc(2026, 3, 9, 8, 5)) == []
    assert [r.key for r in firings.interrupted(store, utc(2026, 3, 9, 8, 10))] == [run.key]
    assert firings.take_over(store, run, utc(2026, 3, 9, 8, 10)) is not None
    store.dispose()
