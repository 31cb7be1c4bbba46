"""The planner: every firing of a schedule in a time span, and what it would do.

:func:`plan_schedule` is the one function that says when a schedule fires,
whether each firing sends or is skipped (and why), and which window of
articles it covers. The scheduler's tick calls it for what is due now,
``dispatch plan`` (text and ``--json``) for what is to come, and a calendar
can call it for any span. It is pure: the store's part (where the last
window ended, what was already sent) comes in as :class:`History`, read only
when a firing needs it.

Articles already published count from when dispatch first saw them;
future-dated articles count from their date, exactly as the scheduler will
see them then.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from dispatch.models import Article
from dispatch.schedule import firings
from dispatch.schedule.decide import (
    decide_fires,
    judge,
    matches,
    publish_fire_time,
    select_articles,
    start_time,
    too_few,
    window_start,
)
from dispatch.schedule.model import Schedule, ScheduleSet
from dispatch.schedule.triggers import due_firings
from dispatch.store.articles import first_seen
from dispatch.store.engine import Store

Published = Sequence[tuple[Article, datetime]]
WINDOW_KINDS = ("digest", "social")


@dataclass(frozen=True, slots=True)
class PlannedFiring:
    schedule: Schedule
    fire_time: datetime
    starts_at: datetime
    """Later than fire_time when quiet hours hold the firing back."""
    verdict: Literal["send", "skip", "wait"]
    reason: str
    articles: tuple[Article, ...]
    audience_size: int | None
    window: tuple[datetime, datetime] | None = None
    """The articles' window ``(start, end]`` for digests and timed social posts."""


@dataclass(frozen=True, slots=True)
class History:
    """What the store remembers that the planner needs for a schedule's windows."""

    window_start: datetime
    """Where the next window begins (end of the last sent one, ``starts:``, or first seen)."""
    sent: frozenset[str]
    """Slugs already in one of its editions."""


def sent_articles(store: Store, schedule_id: str) -> frozenset[str]:
    """Slugs already in one of this schedule's sent editions (never in two)."""
    return frozenset(slug for run in firings.runs(store, schedule_id)
                     if run.status == "sent" for slug in run.articles)


def history(store: Store, schedule: Schedule, base: datetime) -> History:
    """``base``: when the scheduler first saw the schedule."""
    return History(window_start(schedule, firings.last_window_end(store, schedule.id), base),
                   sent_articles(store, schedule.id))


def plan_schedule(schedule: Schedule, published: Published, since: datetime, until: datetime,
                  now: datetime, remembered: Callable[[], History],
                  audience_size: int | None = None) -> list[PlannedFiring]:
    """Calendar firings of ``schedule`` in ``(since, until]``, oldest first.

    Firings at or before ``now`` are judged as the scheduler runs them
    (coalesced, late ones skipped, quiet hours waited out); later ones as
    they will be judged when they come. ``remembered`` is called at most once,
    and only if a firing has to choose articles.
    """
    fires = due_firings(schedule, since, until)
    past: dict[datetime, tuple[Literal["send", "skip", "wait"], str]] = {}
    for d in decide_fires(schedule, [f for f in fires if f <= now], now):
        past[d.fire_time] = ("send" if d.verdict == "run" else d.verdict, d.reason)
    state: History | None = None
    out: list[PlannedFiring] = []
    for fire in fires:
        starts = start_time(schedule, fire)
        if fire in past:
            verdict, reason = past[fire]
        elif fire <= now:
            continue  # an older firing that the latest one covers is already judged
        else:
            judged, reason = judge(schedule, fire, starts)
            verdict = "send" if judged == "run" else judged
        if verdict != "send" or schedule.kind not in WINDOW_KINDS:
            out.append(PlannedFiring(schedule, fire, starts, verdict, reason, (),
                                     audience_size))
            continue
        if state is None:
            state = remembered()
        window = (state.window_start, fire)
        chosen = tuple(select_articles(schedule, published, window, state.sent))
        if len(chosen) < schedule.min_articles:
            out.append(PlannedFiring(schedule, fire, starts, "skip",
                                     too_few(schedule, len(chosen), window[0]), chosen,
                                     audience_size, window))
            continue
        # The next window starts where this one ends, without what it took.
        state = History(fire, state.sent | {a.slug for a in chosen})
        out.append(PlannedFiring(schedule, fire, starts, "send", reason, chosen, audience_size,
                                 window))
    return out


def expected_seen(store: Store, articles: Sequence[Article], now: datetime,
                  until: datetime) -> list[tuple[Article, datetime]]:
    """Every article that is or will be published by ``until``, with its seen time."""
    seen = first_seen(store)
    out = []
    for article in articles:
        if article.status != "published" or article.date > until:
            continue
        out.append((article, seen.get(article.slug, max(article.date, now))))
    return out


def plan(store: Store, schedules: ScheduleSet, articles: Sequence[Article], now: datetime,
         until: datetime, audience_size: Callable[[Sequence[str]], int],
         since: datetime | None = None) -> list[PlannedFiring]:
    """Firings after ``since`` (default ``now``) up to ``until``, in time order.

    A later ``since`` still plans every window from ``now`` on, and shows
    only the firings after it.
    """
    published = expected_seen(store, articles, now, until)
    states = {s.schedule_id: s for s in firings.runs_summary(store)}
    out: list[PlannedFiring] = []
    for schedule in schedules.schedules:
        size = audience_size(schedule.audience) if schedule.audience else None
        state = states.get(schedule.id)
        base = state.first_seen_at if state else now
        if schedule.on_publish:
            out.extend(_plan_published(store, schedule, published, now, until, base, size,
                                       since))
            continue

        def remembered(schedule: Schedule = schedule, base: datetime = base) -> History:
            return history(store, schedule, base)

        # Only a digest's windows chain one firing to the next; other kinds
        # start at --from, so a frequent schedule's firings far ahead are not
        # lost past the cap on firings counted from now.
        lower = now if since is None or schedule.kind in WINDOW_KINDS else max(now, since)
        out.extend(p for p in plan_schedule(schedule, published, lower, until, now, remembered,
                                            size) if since is None or p.fire_time > since)
    out.sort(key=lambda p: (p.starts_at, p.schedule.id))
    return out


def _plan_published(store: Store, schedule: Schedule, published: Published, now: datetime,
                    until: datetime, base: datetime, size: int | None,
                    since: datetime | None) -> list[PlannedFiring]:
    done = firings.fired_articles(store, schedule.id)
    out = []
    for article, seen in published:
        fire = publish_fire_time(schedule, seen)
        if seen <= base or article.slug in done or not matches(schedule, article):
            continue
        if not max(now, since or now) < fire <= until:
            continue
        starts = start_time(schedule, fire)
        verdict: Literal["send", "skip"] = "send" if schedule.enabled else "skip"
        out.append(PlannedFiring(schedule, fire, starts, verdict,
                                 "" if schedule.enabled else "paused (enabled: false)",
                                 (article,), size))
    return out


def next_window(store: Store, schedule: Schedule, articles: Sequence[Article],
                now: datetime) -> tuple[datetime, int]:
    """Where a digest's next window starts, and how many articles are in it so far."""
    state = {s.schedule_id: s for s in firings.runs_summary(store)}.get(schedule.id)
    remembered = history(store, schedule, state.first_seen_at if state else now)
    published = expected_seen(store, articles, now, now)
    chosen = select_articles(schedule, published, (remembered.window_start, now),
                             remembered.sent)
    return remembered.window_start, len(chosen)


def preview_trigger(store: Store, schedule: Schedule, articles: Sequence[Article],
                    now: datetime, audience_size: Callable[[Sequence[str]], int],
                    article: str | None = None) -> PlannedFiring:
    """What ``dispatch trigger ID`` would send now; records nothing."""
    from dispatch.schedule.engine import published_with_seen

    published = published_with_seen(store, articles, now)
    size = audience_size(schedule.audience) if schedule.audience else None
    state = {s.schedule_id: s for s in firings.runs_summary(store)}.get(schedule.id)
    if schedule.on_publish:
        chosen = [a for a, _ in published if matches(schedule, a)
                  and (article is None or a.slug == article)]
        chosen = sorted(chosen, key=lambda a: (a.date, a.slug))[-1:]
        verdict: Literal["send", "skip"] = "send" if chosen else "skip"
        reason = "" if chosen else "no matching published article"
        return PlannedFiring(schedule, now, now, verdict, reason, tuple(chosen), size)
    if schedule.kind == "feeds":
        return PlannedFiring(schedule, now, now, "send", "", (), None)
    remembered = history(store, schedule, state.first_seen_at if state else now)
    window = (remembered.window_start, now)
    chosen = select_articles(schedule, published, window, remembered.sent)
    if len(chosen) < schedule.min_articles:
        return PlannedFiring(schedule, now, now, "skip",
                             too_few(schedule, len(chosen), window[0]), tuple(chosen), size,
                             window)
    return PlannedFiring(schedule, now, now, "send", "", tuple(chosen), size, window)
