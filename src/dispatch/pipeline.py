"""One pass of the main job: load, detect, then let every stage act.

A pass takes ``now`` as a parameter, so a test or a catch-up can run it at
any time. Stages are small callables listed by :func:`default_stages`; each
gets the same :class:`~dispatch.stage.PassContext` and answers with a
one-line report. A stage that fails with a
:class:`~dispatch.errors.DispatchError` is reported and the others still
run: one broken channel never stops the rest of the pass.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from dispatch.config import Settings
from dispatch.content.loader import LoadResult, load_site
from dispatch.errors import DispatchError, Problem, StoreError
from dispatch.stage import PassContext, SocialSchedules, Stage, StageReport, no_social_schedules
from dispatch.store.articles import (
    StoreCache,
    record_publications,
    recorded_hashes,
    slug_holders,
)
from dispatch.store.engine import Store, existing_store

__all__ = ["STAGES", "PassContext", "PassReport", "Stage", "StageReport", "default_stages",
           "load", "run_pass"]


STAGES: dict[str, str] = {
    # Subscriber lists synced from CSV files come first: editions queued
    # later in this pass freeze their audience from them.
    "subscribers": "dispatch.subscribers.sync:subscribers_stage",
    # Expired signups go before anything is queued; late confirmations are sent.
    "signup": "dispatch.signup.stage:signup_stage",
    "feeds": "dispatch.feeds.stage:feeds_stage",
    "social": "dispatch.social.stage:social_stage",
    # Bounces and complaints before delivery: an address suppressed by a
    # report read in this pass is not mailed by it.
    "bounces": "dispatch.bounces.stage:bounces_stage",
    # Delivery stays LAST: it drains what the stages above queued this pass.
    "delivery": "dispatch.delivery.stage:delivery_stage",
}
"""The stages of a pass, in order, after articles are recorded: name ->
``module:function``. A new stage is a module with one function plus one line."""


def default_stages() -> list[tuple[str, Stage]]:
    """Every stage of a pass, in order.

    Imported when a pass runs rather than at the top so that ``dispatch
    check`` never pays for premailer, feedgen or httpx.
    """
    stages: list[tuple[str, Stage]] = []
    for name, reference in STAGES.items():
        module, attr = reference.split(":")
        stages.append((name, getattr(importlib.import_module(module), attr)))
    return stages


@dataclass(frozen=True)
class PassReport:
    now: datetime
    loaded: int
    published: int
    new: tuple[str, ...]
    changed: tuple[str, ...]
    problems: tuple[Problem, ...]
    stages: tuple[StageReport, ...] = field(default=())
    first: bool = False
    """The store had recorded nothing before: ``new`` is the back catalogue."""
    held: tuple[str, ...] = ()
    """Sources of articles held back from every channel because of their errors."""

    @property
    def errors(self) -> int:
        return sum(1 for p in self.problems if p.is_error) + sum(
            1 for s in self.stages for p in s.problems if p.is_error)

    @property
    def ok(self) -> bool:
        return self.errors == 0 and not any(s.failed for s in self.stages)


def load(settings: Settings, store: Store) -> LoadResult:
    return load_site(settings, StoreCache(store), slug_holders(store))


def load_for_check(settings: Settings) -> LoadResult:
    """Load without creating a database or writing to one: ``check`` and
    ``preview`` consult the store only if it already exists, for which file
    holds a contested slug and for the load cache (read only: on a warm cache
    they parse nothing, so Markdown and YAML are never imported for them)."""
    store = existing_store(settings.database_url)
    if store is None:
        return load_site(settings)
    try:
        holders = slug_holders(store)
    except DispatchError:
        # An unreadable or older database: the date rule decides, nothing is cached.
        store.dispose()
        return load_site(settings)
    try:
        return load_site(settings, StoreCache(store, read_only=True), holders)
    except StoreError:
        return load_site(settings, holders=holders)  # a cache from an older version


def run_pass(settings: Settings, store: Store, now: datetime,
             stages: list[tuple[str, Stage]] | None = None, *,
             social_schedules: Callable[[], SocialSchedules] = no_social_schedules
             ) -> PassReport:
    """Load, record publications, then run every stage with one context.

    ``social_schedules`` is what the caller knows of schedules.yaml (the
    scheduler and ``dispatch run`` pass
    :func:`dispatch.schedule.coverage.social_schedules`).
    """
    if now.tzinfo is None:
        raise ValueError("run_pass needs an aware 'now'")
    result, held = hold_back(settings, store, load(settings, store), now)
    publication = record_publications(store, result.articles, now)
    ctx = PassContext(settings, store, now, result, publication, social_schedules)
    reports: list[StageReport] = []
    for name, stage in (default_stages() if stages is None else stages):
        try:
            reports.append(stage(ctx))
        except DispatchError as exc:
            problems = getattr(exc, "problems", ())
            reports.append(StageReport(name, f"failed: {exc}", tuple(problems), failed=True))
    return PassReport(
        now=now,
        loaded=len(result.articles),
        published=len(ctx.published),
        new=tuple(a.slug for a in publication.new),
        changed=tuple(a.slug for a in publication.changed),
        problems=result.problems,
        stages=tuple(reports),
        first=publication.first,
        held=held,
    )


def hold_back(settings: Settings, store: Store, result: LoadResult,
              now: datetime) -> tuple[LoadResult, tuple[str, ...]]:
    """Leave out of the pass every new or changed published article that has
    errors: it reaches no feed, post or email, and since it is not recorded
    it is checked (and reported) again on every pass until it is fixed; once
    fixed it is published as usual. An article already published that gains
    an error leaves the feeds until it is fixed (it is never announced twice).
    Returns the pass's articles and the sources held back."""
    from dispatch.render.checkcache import previous_email_check, record_email_check, render_key
    from dispatch.render.checks import article_errors  # rendering: loaded when needed

    recorded = recorded_hashes(store)
    fingerprint = render_key(settings)
    checked_under, held_before = previous_email_check(settings)
    # New and changed articles are checked on every pass. Unchanged ones only
    # when what their email is made with changed (templates, [email]) or
    # when they were held back last time: otherwise a template edit that
    # breaks an old article's email would be reported by `check` and ignored
    # by the pass.
    everything = checked_under != fingerprint
    published = [a for a in result.articles if a.is_published(now)]
    candidates = [a for a in published
                  if everything or a.source in held_before
                  or recorded.get(a.slug) != a.content_hash]
    errors = article_errors(settings, candidates)
    record_email_check(settings, fingerprint,
                       [a.source for a in published if a.source in errors
                        and recorded.get(a.slug) == a.content_hash])
    if not errors:
        return result, ()
    kept = tuple(a for a in result.articles if a.source not in errors)
    problems = sorted([*result.problems, *(p for found in errors.values() for p in found)],
                      key=lambda p: (p.path, p.line or 0, not p.is_error))
    return (replace(result, articles=kept, problems=tuple(problems),
                    by_slug={a.slug: a for a in kept}), tuple(sorted(errors)))
