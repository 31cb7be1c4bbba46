"""What the scheduler remembers: one row per firing, and when each schedule began.

:func:`claim` is the first statement of every firing: an
``INSERT … ON CONFLICT DO NOTHING`` on ``(schedule_id, fire_time, article)``.
Only the caller whose insert created the row goes on to act, so a second
scheduler, a restart, a DST repeat or a re-run does nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import and_, func, select, update

from dispatch.store.engine import Store
from dispatch.store.schema import schedule_runs, schedule_state

Status = Literal["running", "sent", "skipped", "failed"]
Origin = Literal["schedule", "manual"]


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


def last_window_end(store: Store, schedule_id: str) -> datetime | None:
    """Where the previous *successful* firing's window ended: the next one starts there."""
    t = schedule_runs
    with store.read() as conn:
        value = conn.execute(select(func.max(t.c.window_end)).where(
            and_(t.c.schedule_id == schedule_id, t.c.status == "sent"))).scalar()
    return value


def fired_articles(store: Store, schedule_id: str) -> set[str]:
    """Slugs an on-publish schedule has already recorded (in any status)."""
    t = schedule_runs
    with store.read() as conn:
        return set(conn.execute(select(t.c.article).where(
            and_(t.c.schedule_id == schedule_id, t.c.article != ""))).scalars())


def claim(store: Store, schedule_id: str, fire_time: datetime, article: str, now: datetime, *,
          status: Status = "running", reason: str | None = None,
          origin: Origin = "schedule") -> bool:
    """Record a firing; True only for the one caller that created the row."""
    t = schedule_runs
    with store.write() as conn:
        inserted = conn.execute(
            store.insert_ignore(t).returning(t.c.schedule_id),
            {"schedule_id": schedule_id, "fire_time": fire_time, "article": article,
             "status": status, "reason": reason, "origin": origin, "articles": "[]",
             "recorded_at": now, "finished_at": None if status == "running" else now},
        ).first()
    return inserted is not None


def finish(store: Store, schedule_id: str, fire_time: datetime, article: str, now: datetime, *,
           status: Status, reason: str | None = None, summary: str | None = None,
           window: tuple[datetime, datetime] | None = None, edition_id: str | None = None,
           articles: Sequence[str] = ()) -> None:
    t = schedule_runs
    with store.write() as conn:
        conn.execute(update(t).where(and_(
            t.c.schedule_id == schedule_id, t.c.fire_time == fire_time, t.c.article == article,
        )).values(status=status, reason=reason, summary=summary, edition_id=edition_id,
                  window_start=window[0] if window else None,
                  window_end=window[1] if window else None,
                  articles=json.dumps(list(articles)), finished_at=now))


def runs(store: Store, schedule_id: str | None = None, limit: int = 1000) -> list[Run]:
    """Recorded firings, newest first."""
    t = schedule_runs
    query = select(t).order_by(t.c.fire_time.desc(), t.c.article).limit(limit)
    if schedule_id is not None:
        query = query.where(t.c.schedule_id == schedule_id)
    with store.read() as conn:
        rows = conn.execute(query).all()
    return [Run(r.schedule_id, r.fire_time, r.article, r.status, r.reason, r.origin,
                r.window_start, r.window_end, r.edition_id, tuple(json.loads(r.articles)),
                r.summary, r.recorded_at) for r in rows]


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
            .where(schedule_runs.c.status == "sent")
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
