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
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Row, and_, func, select, update

from dispatch.store.engine import Store
from dispatch.store.schema import editions, schedule_runs, schedule_state, social_posts

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


def fired_ids(store: Store, schedule_ids: Sequence[str]) -> set[str]:
    """Which of these schedules have any firing recorded."""
    t = schedule_runs
    with store.read() as conn:
        return set(conn.execute(select(t.c.schedule_id).distinct()
                                .where(t.c.schedule_id.in_(list(schedule_ids)))).scalars())


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


def record_plan(store: Store, schedule_id: str, fire_time: datetime, article: str, *,
                window: tuple[datetime, datetime] | None, edition_id: str | None,
                articles: Sequence[str]) -> None:
    """Write down what a claimed firing is about to send, *before* it acts.

    If the process dies between queueing and :func:`finish`, the row still
    says which edition (deterministic id) or which articles it was sending,
    so :func:`resolve_interrupted` can tell "queued" from "nothing sent".
    """
    t = schedule_runs
    with store.write() as conn:
        conn.execute(update(t).where(and_(
            t.c.schedule_id == schedule_id, t.c.fire_time == fire_time, t.c.article == article,
            t.c.status == "running",
        )).values(edition_id=edition_id, window_start=window[0] if window else None,
                  window_end=window[1] if window else None, articles=json.dumps(list(articles))))


@dataclass(frozen=True, slots=True)
class Resolved:
    run: Run
    status: Status
    """What the interrupted firing is now recorded as: sent or failed."""
    detail: str


INTERRUPTED_AFTER = timedelta(minutes=10)
"""A firing takes seconds; one still "running" this long after it was
claimed belongs to a process that died. (A queued edition is proof enough
at once: see :func:`resolve_interrupted`.)"""


def resolve_interrupted(store: Store, now: datetime,
                        after: timedelta = INTERRUPTED_AFTER) -> list[Resolved]:
    """Settle firings left "running" by a process that stopped mid-firing.

    What it had queued decides: its edition in ``editions`` (or, for social
    firings, its posts in ``social_posts``) means it went out, so it is
    recorded as sent and its digest window counts; nothing queued means
    nothing went out, so it is recorded as failed and the window does not
    count (a digest's articles go in the next one).
    """
    t = schedule_runs
    with store.read() as conn:
        rows = conn.execute(select(t).where(t.c.status == "running")).all()
        if not rows:
            return []
        queued_editions = set(conn.execute(select(editions.c.edition_id).where(
            editions.c.edition_id.in_([r.edition_id for r in rows if r.edition_id]))).scalars())
        slugs = {s for r in rows if not r.edition_id for s in json.loads(r.articles)}
        posted_slugs = set(conn.execute(select(social_posts.c.slug).distinct().where(
            social_posts.c.slug.in_(sorted(slugs)))).scalars()) if slugs else set()
    out: list[Resolved] = []
    for row in rows:
        run = _run(row)
        if row.edition_id and row.edition_id in queued_editions:
            out.append(Resolved(run, "sent", f"recovered after an interruption: edition "
                                f"{row.edition_id} had been queued"))
        elif not row.edition_id and posted_slugs & set(run.articles):
            out.append(Resolved(run, "sent", "recovered after an interruption: its posts "
                                "had been queued"))
        elif row.recorded_at <= now - after:
            out.append(Resolved(run, "failed", "interrupted before anything was queued "
                                "(dispatch stopped mid-firing); nothing was sent"))
    with store.write() as conn:
        for r in out:
            done: dict[str, object] = {"status": r.status, "finished_at": now}
            done.update({"summary": r.detail} if r.status == "sent" else
                        {"reason": r.detail, "window_start": None, "window_end": None})
            # Only if still running: the firing's own finish() may have won.
            conn.execute(update(t).where(and_(
                t.c.schedule_id == r.run.schedule_id, t.c.fire_time == r.run.fire_time,
                t.c.article == r.run.article, t.c.status == "running")).values(**done))
    return out


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
    return [_run(r) for r in rows]


def _run(r: Row[Any]) -> Run:
    return Run(r.schedule_id, r.fire_time, r.article, r.status, r.reason, r.origin,
               r.window_start, r.window_end, r.edition_id, tuple(json.loads(r.articles)),
               r.summary, r.recorded_at)


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
