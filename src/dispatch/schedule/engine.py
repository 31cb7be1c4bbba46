"""Carry out what is due at ``now``: the one effectful step of the scheduler.

:func:`tick` asks the store what each schedule already did, lets the planner
(``plan.plan_schedule``, the same function ``dispatch plan`` calls) and the
pure functions in ``decide.py`` say what is due, and for every firing records
the row *first* (``firings.claim``, which also leases it) and acts only if that
insert created it. APScheduler, ``dispatch run --once`` and ``dispatch
trigger`` all end here.

Steps of a firing, each fenced on its lease: claim → plan (what it will
send, written down) → queue (idempotent) → finish. A leader killed at any
step leaves a lease that expires; the next tick's :func:`recover` takes the
firing over and does it again within the schedule's ``max_lateness``
(a firing whose edition was already queued completes without a second
copy), or, later than that, settles it by what it had queued.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from dispatch import digest
from dispatch.errors import DispatchError, InputError
from dispatch.models import Article
from dispatch.schedule import firings
from dispatch.schedule.actions import Actions
from dispatch.schedule.decide import (
    Decision,
    Verdict,
    decide_published,
    digest_window,
    edition_id,
    judge,
    matches,
    too_few,
    window_start,
)
from dispatch.schedule.model import Schedule, ScheduleSet, format_duration
from dispatch.schedule.plan import history, plan_schedule, sent_articles
from dispatch.store.articles import first_seen
from dispatch.store.engine import Store

log = logging.getLogger(__name__)

Published = Sequence[tuple[Article, datetime]]
_VERDICTS: dict[str, Verdict] = {"send": "run", "skip": "skip", "wait": "wait"}


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


def recover(store: Store, schedules: Sequence[Schedule], published: Published,
            now: datetime, actions: Actions, baselines: Mapping[str, datetime],
            only: Sequence[str] | None = None) -> list[FiringReport]:
    """Take over firings a stopped leader left running, and finish them once.

    Within the schedule's ``max_lateness`` (counted from its fire time, as
    for any firing) an interrupted firing whose plan was queued is completed
    as recorded, and one that queued nothing is done again; later than that
    it is settled by what it had queued (sent, or failed: nothing was sent,
    and a digest's articles go in the next one). ``only`` limits this to
    some schedule ids (``dispatch trigger`` leaves the others to the leader).
    """
    by_id = {s.id: s for s in schedules}
    reports: list[FiringReport] = []
    for run in firings.interrupted(store, now):
        if only is not None and run.schedule_id not in only:
            continue
        schedule = by_id.get(run.schedule_id)
        token = firings.take_over(store, run, now)
        if token is None:
            continue  # another process took it over first, or it just finished
        queued = firings.was_queued(store, run)
        if queued and run.edition_id:
            detail = (f"recovered after an interruption: edition {run.edition_id} had been "
                      "queued")
            firings.finish(store, *run.key, now, status=firings.Status.SENT, summary=detail,
                           window=_window(run), edition_id=run.edition_id,
                           articles=run.articles, token=token)
            reports.append(FiringReport(*run.key, "sent", detail))
            continue
        refused = ("its schedule is no longer in force" if schedule is None
                   else _refusal(schedule, run, now))
        if schedule is not None and refused is None:
            decision = Decision(run.schedule_id, run.fire_time, "run", "", run.article)
            done = perform(store, schedule, decision, token, published, now, actions,
                           baselines.get(schedule.id, run.recorded_at))
            reports.append(replace(done, detail=f"redone after an interruption: {done.detail}"))
            continue
        if queued:
            detail = "recovered after an interruption: its posts had been queued"
            firings.finish(store, *run.key, now, status=firings.Status.SENT, summary=detail,
                           window=_window(run), articles=run.articles, token=token)
            reports.append(FiringReport(*run.key, "sent", detail))
            continue
        detail = (f"interrupted before anything was queued (dispatch stopped mid-firing) and "
                  f"not done again: {refused}; nothing was sent")
        firings.finish(store, *run.key, now, status=firings.Status.FAILED, reason=detail,
                       articles=run.articles, token=token)
        reports.append(FiringReport(*run.key, "failed", detail))
    return reports


def _window(run: firings.Run) -> tuple[datetime, datetime] | None:
    if run.window_start is None or run.window_end is None:
        return None
    return run.window_start, run.window_end


def _refusal(schedule: Schedule, run: firings.Run, now: datetime) -> str | None:
    """Why an interrupted firing may not be done again now; None if it may.

    The rule of any late firing (``judge``): not later than max_lateness, and
    not while its schedule is paused. A manual firing (``dispatch trigger``)
    counts from when it was asked for, paused schedule or not.
    """
    if run.origin != "schedule":
        late = now - run.fire_time
        if late <= schedule.max_lateness:
            return None
        return (f"missed by {format_duration(late)} (max_lateness "
                f"{format_duration(schedule.max_lateness)})")
    verdict, reason = judge(schedule, run.fire_time, now)
    return None if verdict == "run" else reason or verdict


def tick(store: Store, schedules: ScheduleSet, articles: Sequence[Article], now: datetime,
         actions: Actions) -> list[FiringReport]:
    """Handle every firing due at ``now`` for every schedule; idempotent."""
    published = published_with_seen(store, articles, now)
    memory = firings.remember(store, {s.id: calendar_key(s) for s in schedules.schedules}, now)
    # First, so that a digest window an interrupted firing had queued counts
    # before the next window is chosen.
    reports = recover(store, schedules.schedules, published, now, actions,
                      {i: m.baseline for i, m in memory.items()})
    for schedule in schedules.schedules:
        known = memory[schedule.id]
        base = known.baseline
        if schedule.on_publish:
            pending = [(a, seen) for a, seen in published if seen > base
                       and a.slug not in known.fired_articles and matches(schedule, a)]
            decisions = decide_published(schedule, pending, now)
        else:
            last = known.last_fire_time
            decisions = [
                Decision(schedule.id, p.fire_time, _VERDICTS[p.verdict], p.reason)
                for p in plan_schedule(schedule, published, max(base, last) if last else base,
                                       now, now, functools.partial(history, store, schedule,
                                                                   base))]
        for decision in decisions:
            report = carry_out(store, schedule, decision, published, now, actions, base)
            if report is not None:
                reports.append(report)
    return reports


def failure_reason(exc: Exception) -> str:
    """One line per problem, without saying "subject: subject:" twice."""
    if isinstance(exc, InputError) and exc.problems:
        parts = []
        for p in exc.problems:
            where = p.path if p.line is None else f"{p.path}:{p.line}"
            if p.field and p.field != p.path:
                where += f": {p.field}"
            parts.append(f"{where}: {p.message}" + (f" (expected {p.expected})"
                                                    if p.expected else ""))
        return "; ".join(parts)
    return str(exc)


def carry_out(store: Store, schedule: Schedule, decision: Decision, published: Published,
              now: datetime, actions: Actions, base: datetime, *,
              origin: firings.Origin = "schedule") -> FiringReport | None:
    """Record the firing, then act; None when another process recorded it first."""
    key = (schedule.id, decision.fire_time, decision.article)
    if decision.verdict == "wait":
        return FiringReport(*key, "waiting", decision.reason)
    if decision.verdict == "skip":
        if not firings.claim(store, *key, now, status=firings.Status.SKIPPED,
                             reason=decision.reason, origin=origin):
            return None
        return FiringReport(*key, "skipped", decision.reason)
    token = firings.claim(store, *key, now, origin=origin)
    if token is None:
        return None
    return perform(store, schedule, decision, token, published, now, actions, base)


def perform(store: Store, schedule: Schedule, decision: Decision, token: str,
            published: Published, now: datetime, actions: Actions,
            base: datetime) -> FiringReport:
    """Plan, act and finish a firing this caller holds the lease of."""
    key = (schedule.id, decision.fire_time, decision.article)
    try:
        plan = plan_firing(store, schedule, decision, published, base)
        if plan.action == "skip":
            firings.finish(store, *key, now, status=firings.Status.SKIPPED, reason=plan.reason,
                           articles=plan.slugs, token=token)
            return FiringReport(*key, "skipped", plan.reason)
        # Written before acting: a crash after queueing leaves a row that
        # names the edition it queued (see recover).
        firings.record_plan(store, *key, window=plan.window, edition_id=plan.edition_id,
                            articles=plan.slugs, token=token)
        detail = _act(schedule, plan, decision.fire_time, now, actions)
    except Exception as exc:
        # Recorded as failed and not retried by the scheduler: an action
        # that raised is a mistake to fix (a template, a list name), and the
        # actions are idempotent, so `dispatch trigger` can finish it by hand.
        if not isinstance(exc, DispatchError):
            log.exception("firing %s at %s failed", schedule.id, decision.fire_time)
        reason = failure_reason(exc)
        firings.finish(store, *key, now, status=firings.Status.FAILED, reason=reason,
                       token=token)
        return FiringReport(*key, "failed", reason)
    if not firings.finish(store, *key, now, status=firings.Status.SENT, summary=detail,
                          window=plan.window, edition_id=plan.edition_id,
                          articles=plan.slugs, token=token):
        # Our lease ran out and another leader took the firing over; what we
        # queued is idempotent, so its run finds it queued and records it.
        log.warning("firing %s at %s: lease lost before it was recorded", schedule.id,
                    decision.fire_time)
    return FiringReport(*key, "sent", detail)


@dataclass(frozen=True, slots=True)
class Plan:
    """What one claimed firing will do, decided before it does anything."""

    action: Literal["digest", "article", "social", "feeds", "skip"]
    reason: str = ""
    """Why it is skipped."""
    articles: tuple[Article, ...] = ()
    """What the action is given."""
    slugs: tuple[str, ...] = ()
    """What the firing is recorded as being about."""
    window: tuple[datetime, datetime] | None = None
    edition_id: str | None = None


def window_for(store: Store, schedule: Schedule, fire_time: datetime,
               base: datetime) -> tuple[datetime, datetime]:
    return window_start(schedule, firings.last_window_end(store, schedule.id), base), fire_time


def plan_firing(store: Store, schedule: Schedule, decision: Decision, published: Published,
                base: datetime) -> Plan:
    fire = decision.fire_time
    everything = tuple(a for a, _ in published)
    if decision.article:
        article = next((a for a in everything if a.slug == decision.article), None)
        if article is None:
            return Plan("skip", f"article {decision.article} is no longer published",
                        slugs=(decision.article,))
        slugs: tuple[str, ...] = (article.slug,)
        if schedule.kind == "article":
            return Plan("article", articles=(article,), slugs=slugs,
                        edition_id=edition_id(schedule, fire, article.slug))
        if schedule.kind == "social":
            return Plan("social", articles=(article,), slugs=slugs)
        return Plan("feeds", articles=everything, slugs=slugs)
    if schedule.kind == "feeds":
        return Plan("feeds", articles=everything)
    window = window_for(store, schedule, fire, base)
    # One rule for a digest's articles and its edition id, shared with
    # `dispatch send --digest` (dispatch.digest).
    found = digest.decide(published, digest_window(schedule, window),
                          digest.Firing(schedule.id, fire),
                          wanted=functools.partial(matches, schedule),
                          sent=sent_articles(store, schedule.id), limit=schedule.max_articles)
    chosen = found.articles
    slugs = tuple(a.slug for a in chosen)
    if len(chosen) < schedule.min_articles:
        return Plan("skip", too_few(schedule, len(chosen), window[0]), slugs=slugs)
    if schedule.kind == "social":
        return Plan("social", articles=chosen, slugs=slugs, window=window)
    return Plan("digest", articles=chosen, slugs=slugs, window=window,
                edition_id=found.edition_id)


def _act(schedule: Schedule, plan: Plan, fire: datetime, now: datetime,
         actions: Actions) -> str:
    if plan.action == "digest":
        assert plan.edition_id is not None
        return actions.send_digest(schedule, plan.articles, plan.edition_id, fire, now)
    if plan.action == "article":
        assert plan.edition_id is not None
        return actions.send_article(schedule, plan.articles[0], plan.edition_id, now)
    if plan.action == "social":
        return actions.post_social(schedule, plan.articles, now)
    return actions.build_feeds(schedule, plan.articles, now)


def trigger_now(store: Store, schedule: Schedule, articles: Sequence[Article], now: datetime,
                actions: Actions, article: str | None = None) -> FiringReport | None:
    """``dispatch trigger``: fire one schedule at ``now``, recorded as manual.

    For an on-publish schedule it fires for ``article`` (default: the most
    recent matching published article).
    """
    published = published_with_seen(store, articles, now)
    base = firings.remember(store, {schedule.id: calendar_key(schedule)}, now)[schedule.id].baseline
    recover(store, [schedule], published, now, actions, {schedule.id: base}, only=[schedule.id])
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
