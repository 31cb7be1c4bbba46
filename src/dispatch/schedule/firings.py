"""What the scheduler remembers: one row per firing, and when each schedule began.

A firing is a job of the job engine (:mod:`dispatch.jobs`) whose claim is
its creation. :func:`claim` is the first statement of every firing: an
``INSERT … ON CONFLICT DO NOTHING`` on ``(schedule_id, fire_time, article)``
that also takes a lease (a random token, ``lease_until``). Only the caller
whose insert created the row goes on to act, so a second scheduler, a
restart, a DST repeat or a re-run does nothing. Every later write about the
firing (:func:`record_plan`, :func:`finish`) is fenced on the token.

::

    (new) --claim--> running(leased) --finish--> sent | skipped | failed
                        |  ^
     lease expired      |  '--take_over (next leader, new token)--'
     (the leader died)  '--> interrupted(): redone within max_lateness,
                             else settled by what it had queued

A leader killed at any step of a firing leaves a running row whose lease
expires; the next leader takes it over (:func:`take_over`, an update that
only one caller can win) and does the firing again. Doing it again is safe
because every action is idempotent downstream (an edition on its
deterministic id, its rows on (edition, reader), posts on (article,
network)), so a firing interrupted after queueing completes without a
second copy, and one interrupted before queueing still goes out once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy import ColumnElement, Row, and_, func, or_, select, update

from dispatch.jobs.lease import new_token
from dispatch.store.engine import Store
from dispatch.store.schema import editions, schedule_runs, schedule_state, social_posts


class Status(StrEnum):
    RUNNING = "running"
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"


Origin = Literal["schedule", "manual"]
FIRING_LEASE = timedelta(minutes=2)
"""A firing takes seconds (render once, one INSERT … SELECT per edition), so a
lease still held two minutes later belongs to a leader that died."""
LEGACY_INTERRUPTED_AFTER = timedelta(minutes=10)
"""Rows written before firings had leases: running this long means interrupted."""


@dataclass(frozen=True, slots=True)
class Run:
    schedule_id: str
    fire_time: datetime
    article: str
    status: str
    reason: str | None
    origin: str
    window_start: datetime | None
    window_end: datetime | None
    edition_id: str | None
    articles: tuple[str, ...]
    summary: str | None
    recorded_at: datetime
    attempts: int = 1
    lease_until: datetime | None = None

    @property
    def key(self) -> tuple[str, datetime, str]:
        return self.schedule_id, self.fire_time, self.article


def last_window_end(store: Store, schedule_id: str) -> datetime | None:
    """Where the previous *successful* firing's window ended: the next one starts there."""
    t = schedule_runs
    with store.read() as conn:
        value = conn.execute(select(func.max(t.c.window_end)).where(
            and_(t.c.schedule_id == schedule_id, t.c.status == Status.SENT.value))).scalar()
    return value


def fired_articles(store: Store, schedule_id: str) -> set[str]:
    """Slugs an on-publish schedule has already recorded (in any status)."""
    t = schedule_runs
    with store.read() as conn:
        return set(conn.execute(select(t.c.article).where(
            and_(t.c.schedule_id == schedule_id, t.c.article != ""))).scalars())


def _key(schedule_id: str, fire_time: datetime, article: str) -> ColumnElement[bool]:
    t = schedule_runs
    return and_(t.c.schedule_id == schedule_id, t.c.fire_time == fire_time,
                t.c.article == article)


def _fence(token: str | None) -> ColumnElement[bool]:
    """Only the lease holder may write about a running firing (None: whoever
    finds it running; kept for callers that hold no token)."""
    t = schedule_runs
    if token is None:
        return t.c.status == Status.RUNNING.value
    return and_(t.c.status == Status.RUNNING.value, t.c.lease_owner == token)


def claim(store: Store, schedule_id: str, fire_time: datetime, article: str, now: datetime, *,
          status: Status = Status.RUNNING, reason: str | None = None,
          origin: Origin = "schedule", owner: str = "scheduler") -> str | None:
    """Record a firing; its lease token for the one caller that created the row, else None.

    A running firing is leased for :data:`FIRING_LEASE`; one recorded
    already finished (``skipped``) holds no lease.
    """
    t = schedule_runs
    token = new_token(owner)
    status = Status(status)  # a plain "skipped" from older callers too
    running = status is Status.RUNNING
    with store.write() as conn:
        inserted = conn.execute(
            store.insert_ignore(t).returning(t.c.schedule_id),
            {"schedule_id": schedule_id, "fire_time": fire_time, "article": article,
             "status": status.value, "reason": reason, "origin": origin, "articles": "[]",
             "recorded_at": now, "finished_at": None if running else now,
             "lease_owner": token if running else None,
             "lease_until": now + FIRING_LEASE if running else None, "attempts": 1},
        ).first()
    return token if inserted is not None else None


def _expired(now: datetime) -> ColumnElement[bool]:
    t = schedule_runs
    return and_(t.c.status == Status.RUNNING.value, or_(
        t.c.lease_until < now,
        and_(t.c.lease_until.is_(None), t.c.recorded_at <= now - LEGACY_INTERRUPTED_AFTER)))


def interrupted(store: Store, now: datetime) -> list[Run]:
    """Firings still running whose lease expired: their leader stopped mid-firing."""
    t = schedule_runs
    with store.read() as conn:
        rows = conn.execute(select(t).where(_expired(now))
                            .order_by(t.c.fire_time, t.c.schedule_id, t.c.article)).all()
    return [_run(r) for r in rows]


def take_over(store: Store, run: Run, now: datetime, owner: str = "scheduler") -> str | None:
    """Lease an interrupted firing to this caller; its new token, or None if
    another caller took it first (or it finished meanwhile).

    One UPDATE guarded by "still running, lease expired": two leaders racing
    for it both run it, and only the first to commit changes a row (on
    PostgreSQL the second waits on the row lock, then finds the lease live).
    """
    t = schedule_runs
    token = new_token(owner)
    with store.write() as conn:
        taken = conn.execute(update(t).where(_key(*run.key), _expired(now)).values(
            lease_owner=token, lease_until=now + FIRING_LEASE,
            attempts=t.c.attempts + 1)).rowcount
    return token if taken else None


def record_plan(store: Store, schedule_id: str, fire_time: datetime, article: str, *,
                window: tuple[datetime, datetime] | None, edition_id: str | None,
                articles: Sequence[str], token: str | None = None) -> bool:
    """Write down what a claimed firing is about to send, *before* it acts.

    If the process dies between queueing and :func:`finish`, the row still
    says which edition (deterministic id) or which articles it was sending,
    so whoever settles it can tell "queued" from "nothing sent". False if
    the lease was lost.
    """
    t = schedule_runs
    with store.write() as conn:
        return bool(conn.execute(update(t).where(
            _key(schedule_id, fire_time, article), _fence(token),
        ).values(edition_id=edition_id, window_start=window[0] if window else None,
                 window_end=window[1] if window else None,
                 articles=json.dumps(list(articles)))).rowcount)


def was_queued(store: Store, run: Run) -> bool:
    """Whether an interrupted firing had queued what it planned: its edition
    exists, or (no edition) posts of its articles do."""
    with store.read() as conn:
        if run.edition_id:
            return conn.execute(select(editions.c.edition_id).where(
                editions.c.edition_id == run.edition_id)).first() is not None
        if not run.articles:
            return False
        return conn.execute(select(social_posts.c.slug).where(
            social_posts.c.slug.in_(list(run.articles)))).first() is not None


def finish(store: Store, schedule_id: str, fire_time: datetime, article: str, now: datetime, *,
           status: Status, reason: str | None = None, summary: str | None = None,
           window: tuple[datetime, datetime] | None = None, edition_id: str | None = None,
           articles: Sequence[str] = (), token: str | None = None) -> bool:
    """Record how a firing ended; False if its lease was lost to another leader
    (who then records it instead)."""
    t = schedule_runs
    with store.write() as conn:
        return bool(conn.execute(update(t).where(
            _key(schedule_id, fire_time, article), _fence(token),
        ).values(status=Status(status).value, reason=reason, summary=summary,
                 edition_id=edition_id,
                 window_start=window[0] if window else None,
                 window_end=window[1] if window else None,
                 articles=json.dumps(list(articles)), finished_at=now, lease_owner=None,
                 lease_until=None)).rowcount)


def runs(store: Store, schedule_id: str | None = None, limit: int = 1000) -> list[Run]:
    """Recorded firings, newest first."""
    t = schedule_runs
    query = select(t).order_by(t.c.fire_time.desc(), t.c.article).limit(limit)
    if schedule_id is not None:
        query = query.where(t.c.schedule_id == schedule_id)
    with store.read() as conn:
        rows = conn.execute(query).all()
    return [_run(r) for r in rows]


def _run(r: Row[Any]) -> Run:
    return Run(r.schedule_id, r.fire_time, r.article, r.status, r.reason, r.origin,
               r.window_start, r.window_end, r.edition_id, tuple(json.loads(r.articles)),
               r.summary, r.recorded_at, r.attempts, r.lease_until)


@dataclass(frozen=True, slots=True)
class ScheduleStatus:
    schedule_id: str
    first_seen_at: datetime
    window_end: datetime | None
    """End of the last successful firing's window (where the next digest starts)."""
    last: Run | None


def runs_summary(store: Store) -> list[ScheduleStatus]:
    """One line per schedule the scheduler has ever seen."""
    with store.read() as conn:
        state = conn.execute(select(schedule_state)).all()
        ends = dict(conn.execute(
            select(schedule_runs.c.schedule_id, func.max(schedule_runs.c.window_end))
            .where(schedule_runs.c.status == Status.SENT.value)
            .group_by(schedule_runs.c.schedule_id)).all())
    out = []
    for row in state:
        latest = runs(store, row.schedule_id, limit=1)
        out.append(ScheduleStatus(row.schedule_id, row.first_seen_at, ends.get(row.schedule_id),
                                  latest[0] if latest else None))
    return out


@dataclass(frozen=True, slots=True)
class Memory:
    """What one tick needs to know about a schedule, read in one go."""

    baseline: datetime
    last_fire_time: datetime | None
    fired_articles: frozenset[str]


def remember(store: Store, schedules: Mapping[str, str], now: datetime) -> dict[str, Memory]:
    """Baselines, last calendar firings and fired articles for every schedule,
    in a few statements whatever their number.

    ``schedules`` maps each id to its calendar trigger as written ("" for
    on-publish). A new id, or a calendar trigger that changed, gets ``now``
    as its baseline: an edit must not make a past firing due.
    """
    ids = list(schedules)
    if not ids:
        return {}
    s, r = schedule_state, schedule_runs
    with store.read() as conn:
        rows = conn.execute(select(s.c.schedule_id, s.c.first_seen_at, s.c.trigger)
                            .where(s.c.schedule_id.in_(ids))).all()
    known = {row.schedule_id: row.first_seen_at for row in rows}
    stale = [row.schedule_id for row in rows
             if schedules[row.schedule_id] and row.trigger != schedules[row.schedule_id]]
    missing = [i for i in ids if i not in known]
    if missing or stale:
        with store.write() as conn:
            if missing:
                conn.execute(store.insert_ignore(s), [
                    {"schedule_id": i, "first_seen_at": now, "trigger": schedules[i]}
                    for i in missing])
            for i in stale:
                conn.execute(update(s).where(s.c.schedule_id == i)
                             .values(first_seen_at=now, trigger=schedules[i]))
            known.update(conn.execute(select(s.c.schedule_id, s.c.first_seen_at)
                                      .where(s.c.schedule_id.in_(missing + stale))).all())
    with store.read() as conn:
        last = dict(conn.execute(
            select(r.c.schedule_id, func.max(r.c.fire_time))
            .where(r.c.schedule_id.in_(ids), r.c.article == "", r.c.origin == "schedule")
            .group_by(r.c.schedule_id)).all())
        fired: dict[str, set[str]] = {}
        for sid, slug in conn.execute(select(r.c.schedule_id, r.c.article).where(
                r.c.schedule_id.in_(ids), r.c.article != "")):
            fired.setdefault(sid, set()).add(slug)
    return {i: Memory(known[i], last.get(i), frozenset(fired.get(i, ()))) for i in ids}
