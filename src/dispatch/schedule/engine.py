"""Carry out what is due at ``now``: the one effectful step of the scheduler.

:func:`tick` asks the store what each schedule already did, lets the pure
functions in ``decide.py`` say what is due, and for every firing records the
row *first* (``firings.claim``) and acts only if that insert created it.
APScheduler, ``dispatch run --once`` and ``dispatch trigger`` all end here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from dispatch.errors import DispatchError
from dispatch.models import Article
from dispatch.schedule import firings
from dispatch.schedule.actions import Actions
from dispatch.schedule.decide import (
    Decision,
    decide_published,
    decide_timed,
    edition_id,
    matches,
    select_articles,
)
from dispatch.schedule.model import Schedule, ScheduleSet
from dispatch.store.articles import first_seen
from dispatch.store.engine import Store

log = logging.getLogger(__name__)

Published = Sequence[tuple[Article, datetime]]


@dataclass(frozen=True, slots=True)
class FiringReport:
    schedule_id: str
    fire_time: datetime
    article: str
    outcome: str
    """sent | skipped | failed | waiting."""
    detail: str


def published_with_seen(store: Store, articles: Sequence[Article],
                        now: datetime) -> list[tuple[Article, datetime]]:
    """Published articles paired with when dispatch first saw them published."""
    seen = first_seen(store)
    return [(a, seen[a.slug]) for a in articles if a.is_published(now) and a.slug in seen]


def calendar_key(schedule: Schedule) -> str:
    """What a calendar schedule's firing times depend on; "" for on-publish."""
    if schedule.on_publish:
        return ""
    return f"{schedule.trigger!r} {schedule.tz.key}"


def tick(store: Store, schedules: ScheduleSet, articles: Sequence[Article], now: datetime,
         actions: Actions) -> list[FiringReport]:
    """Handle every firing due at ``now`` for every schedule; idempotent."""
    published = published_with_seen(store, articles, now)
    reports: list[FiringReport] = []
    memory = firings.remember(store, {s.id: calendar_key(s) for s in schedules.schedules}, now)
    for schedule in schedules.schedules:
        known = memory[schedule.id]
        base = known.baseline
        if schedule.on_publish:
            pending = [(a, seen) for a, seen in published if seen > base
                       and a.slug not in known.fired_articles and matches(schedule, a)]
            decisions = decide_published(schedule, pending, now)
        else:
            last = known.last_fire_time
            decisions = decide_timed(schedule, max(base, last) if last else base, now)
        for decision in decisions:
            report = carry_out(store, schedule, decision, published, now, actions, base)
            if report is not None:
                reports.append(report)
    return reports


def carry_out(store: Store, schedule: Schedule, decision: Decision, published: Published,
              now: datetime, actions: Actions, base: datetime, *,
              origin: firings.Origin = "schedule") -> FiringReport | None:
    """Record the firing, then act; None when another process recorded it first."""
    key = (schedule.id, decision.fire_time, decision.article)
    if decision.verdict == "wait":
        return FiringReport(*key, "waiting", decision.reason)
    if decision.verdict == "skip":
        if not firings.claim(store, *key, now, status="skipped", reason=decision.reason,
                             origin=origin):
            return None
        return FiringReport(*key, "skipped", decision.reason)
    if not firings.claim(store, *key, now, origin=origin):
        return None
    try:
        result = _act(store, schedule, decision, published, now, actions, base)
    except Exception as exc:
        # Recorded as failed and never retried by the scheduler: a half-done
        # firing repeated automatically is how people get two copies. The
        # actions are idempotent, so `dispatch trigger` can finish it by hand.
        if not isinstance(exc, DispatchError):
            log.exception("firing %s at %s failed", schedule.id, decision.fire_time)
        firings.finish(store, *key, now, status="failed", reason=str(exc))
        return FiringReport(*key, "failed", str(exc))
    status, detail, window, eid, slugs = result
    firings.finish(store, *key, now, status=status,
                   reason=detail if status == "skipped" else None,
                   summary=detail if status == "sent" else None, window=window, edition_id=eid,
                   articles=slugs)
    return FiringReport(*key, status, detail)


_Result = tuple[firings.Status, str, "tuple[datetime, datetime] | None", "str | None",
                tuple[str, ...]]


def window_for(store: Store, schedule: Schedule, fire_time: datetime,
               base: datetime) -> tuple[datetime, datetime]:
    start = firings.last_window_end(store, schedule.id) or base
    return start, fire_time


def _act(store: Store, schedule: Schedule, decision: Decision, published: Published,
         now: datetime, actions: Actions, base: datetime) -> _Result:
    fire = decision.fire_time
    by_slug: Mapping[str, Article] = {a.slug: a for a, _ in published}
    if decision.article:
        article = by_slug.get(decision.article)
        if article is None:
            return "skipped", f"article {decision.article} is no longer published", None, None, ()
        if schedule.kind == "article":
            eid = edition_id(schedule, fire, article.slug)
            return ("sent", actions.send_article(schedule, article, eid, now), None, eid,
                    (article.slug,))
        if schedule.kind == "social":
            posted = actions.post_social(schedule, [article], now)
            return "sent", posted, None, None, (article.slug,)
        return ("sent", actions.build_feeds(schedule, [a for a, _ in published], now), None, None,
                (article.slug,))
    if schedule.kind == "feeds":
        return "sent", actions.build_feeds(schedule, [a for a, _ in published], now), None, None, ()
    window = window_for(store, schedule, fire, base)
    chosen = select_articles(schedule, published, window)
    slugs = tuple(a.slug for a in chosen)
    needed = schedule.min_articles
    if len(chosen) < needed:
        return ("skipped", f"{len(chosen)} new article(s) since the last send; "
                f"min_articles is {needed}", None, None, slugs)
    if schedule.kind == "social":
        return "sent", actions.post_social(schedule, chosen, now), window, None, slugs
    eid = edition_id(schedule, fire)
    return ("sent", actions.send_digest(schedule, chosen, eid, fire, now), window, eid, slugs)


def trigger_now(store: Store, schedule: Schedule, articles: Sequence[Article], now: datetime,
                actions: Actions, article: str | None = None) -> FiringReport | None:
    """``dispatch trigger``: fire one schedule at ``now``, recorded as manual.

    For an on-publish schedule it fires for ``article`` (default: the most
    recent matching published article).
    """
    published = published_with_seen(store, articles, now)
    base = firings.remember(store, {schedule.id: calendar_key(schedule)}, now)[schedule.id].baseline
    slug = ""
    if schedule.on_publish:
        candidates = [a for a, _ in published if matches(schedule, a)]
        if article is not None:
            candidates = [a for a in candidates if a.slug == article]
        if not candidates:
            raise DispatchError(f"no published article matches schedule {schedule.id}"
                                + (f" with slug {article}" if article else ""))
        slug = max(candidates, key=lambda a: (a.date, a.slug)).slug
    fire = now.replace(microsecond=0)
    decision = Decision(schedule.id, fire, "run", "", slug)
    manual = replace(schedule, enabled=True)
    return carry_out(store, manual, decision, published, now, actions, base, origin="manual")
