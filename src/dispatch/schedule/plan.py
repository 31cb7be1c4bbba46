"""``dispatch plan``: what would go out until a date, without queueing anything.

A dry run of the same pure functions the scheduler uses. Articles already
published count from when dispatch first saw them; future-dated articles
count from their date, exactly as the scheduler will see them then.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from dispatch.models import Article
from dispatch.schedule import firings
from dispatch.schedule.decide import (
    judge,
    matches,
    publish_fire_time,
    select_articles,
    start_time,
)
from dispatch.schedule.model import Schedule, ScheduleSet
from dispatch.schedule.triggers import due_firings
from dispatch.store.articles import first_seen
from dispatch.store.engine import Store


@dataclass(frozen=True, slots=True)
class PlannedFiring:
    schedule: Schedule
    fire_time: datetime
    starts_at: datetime
    """Later than fire_time when quiet hours hold the firing back."""
    verdict: str
    """send | skip."""
    reason: str
    articles: tuple[Article, ...]
    audience_size: int | None


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
         until: datetime, audience_size: Callable[[Sequence[str]], int]) -> list[PlannedFiring]:
    """Firings after ``now`` up to ``until``, in time order."""
    published = expected_seen(store, articles, now, until)
    out: list[PlannedFiring] = []
    for schedule in schedules.schedules:
        out.extend(_plan_one(store, schedule, published, now, until, audience_size))
    out.sort(key=lambda p: (p.starts_at, p.schedule.id))
    return out


def _plan_one(store: Store, schedule: Schedule, published: Sequence[tuple[Article, datetime]],
              now: datetime, until: datetime,
              audience_size: Callable[[Sequence[str]], int]) -> list[PlannedFiring]:
    size = audience_size(schedule.audience) if schedule.audience else None
    state = {s.schedule_id: s for s in firings.runs_summary(store)}.get(schedule.id)
    base = state.first_seen_at if state else now
    out = []
    if schedule.on_publish:
        done = firings.fired_articles(store, schedule.id)
        for article, seen in published:
            fire = publish_fire_time(schedule, seen)
            if seen <= base or article.slug in done or not matches(schedule, article):
                continue
            if not now < fire <= until:
                continue
            starts = start_time(schedule, fire)
            verdict = "send" if schedule.enabled else "skip"
            out.append(PlannedFiring(schedule, fire, starts, verdict,
                                     "" if schedule.enabled else "paused (enabled: false)",
                                     (article,), size))
        return out
    window_start = (state.window_end if state and state.window_end else base)
    for fire in due_firings(schedule, now, until):
        starts = start_time(schedule, fire)
        if not schedule.enabled:
            out.append(PlannedFiring(schedule, fire, starts, "skip", "paused (enabled: false)",
                                     (), size))
            continue
        verdict, reason = judge(schedule, fire, starts)
        if schedule.kind == "feeds":
            out.append(PlannedFiring(schedule, fire, starts, "send", "", (), None))
            continue
        chosen = select_articles(schedule, published, (window_start, fire))
        if len(chosen) < schedule.min_articles:
            reason = (f"{len(chosen)} new article(s); min_articles is {schedule.min_articles}")
            out.append(PlannedFiring(schedule, fire, starts, "skip", reason, tuple(chosen), size))
            continue
        window_start = fire
        out.append(PlannedFiring(schedule, fire, starts, "send", reason, tuple(chosen), size))
    return out


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
        verdict, reason = ("send", "") if chosen else ("skip", "no matching published article")
        return PlannedFiring(schedule, now, now, verdict, reason, tuple(chosen), size)
    if schedule.kind == "feeds":
        return PlannedFiring(schedule, now, now, "send", "", (), None)
    start = (state.window_end or state.first_seen_at) if state else now
    chosen = select_articles(schedule, published, (start, now))
    if len(chosen) < schedule.min_articles:
        return PlannedFiring(schedule, now, now, "skip",
                             f"{len(chosen)} new article(s); min_articles is "
                             f"{schedule.min_articles}", tuple(chosen), size)
    return PlannedFiring(schedule, now, now, "send", "", tuple(chosen), size)
