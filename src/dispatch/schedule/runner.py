"""``dispatch run``: APScheduler 3.11 wiring, kept thin on purpose.

Every job calls the same :meth:`SchedulerService.run_pass` with the clock's
``now``; what is due is decided by ``engine.tick`` from the store, so a job
firing twice (a DST repeat, a coalesced misfire) or a second process costs
nothing. APScheduler only decides *when to look*. Its traps
are set on purpose: MemoryJobStore only (nothing pickled), one worker thread,
and on every job ``misfire_grace_time``, ``coalesce=True``,
``max_instances=1`` and a ``ZoneInfo`` timezone.

Delivery does not run inside those passes here: one pass at a time on one
thread, under the run lock, cannot also spend hours sending a large list at
a provider's rate. :func:`serve` runs it beside them instead, on a
:class:`~dispatch.delivery.stage.BackgroundDelivery` thread that stops with
the run's stop event (standby processes deliver too: leases make that safe),
and the pass's delivery stage only reports on that thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from dispatch.config import Settings
from dispatch.errors import Problem
from dispatch.pipeline import (
    PassContext,
    PassReport,
    Stage,
    StageReport,
    default_stages,
    run_pass,
)
from dispatch.schedule.actions import Actions, SiteActions
from dispatch.schedule.coverage import social_schedules
from dispatch.schedule.engine import FiringReport, tick
from dispatch.schedule.leader import Leadership, leadership_for
from dispatch.schedule.model import Schedule, ScheduleSet
from dispatch.schedule.sitefile import read_schedules, reload_schedules
from dispatch.schedule.triggers import next_firing
from dispatch.store.engine import Store

if TYPE_CHECKING:
    from dispatch.delivery.stage import BackgroundDelivery

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def summarise(reports: list[FiringReport]) -> str:
    if not reports:
        return "nothing due"
    return "; ".join(f"{r.schedule_id} {r.outcome}"
                     + (f" ({r.article})" if r.article else "")
                     + (f": {r.detail}" if r.detail else "") for r in reports)


def with_schedule_stage(stages: list[tuple[str, Stage]],
                        stage: Stage) -> list[tuple[str, Stage]]:
    """Firings go after every other stage (lists are synced, so an edition's
    audience is current) and right before delivery, which drains what they
    queued in the same pass."""
    names = [name for name, _ in stages]
    at = names.index("delivery") if "delivery" in names else len(stages)
    return [*stages[:at], ("schedule", stage), *stages[at:]]


def with_delivery_stage(stages: list[tuple[str, Stage]],
                        stage: Stage) -> list[tuple[str, Stage]]:
    """The stages with ``stage`` in the place of the default delivery stage."""
    return [(name, stage if name == "delivery" else found) for name, found in stages]


class SchedulerService:
    """Holds the schedules in force and runs passes with the schedule stage.

    ``delivery`` replaces the pass's delivery stage: a burst sharing the
    run's stop event (``--once``), or the report of a background thread.
    """

    def __init__(self, settings: Settings, store: Store, clock: Clock,
                 actions: Actions | None = None,
                 report: Callable[[PassReport], None] | None = None,
                 delivery: Stage | None = None) -> None:
        from dispatch.delivery.stage import delivery_stage

        self.settings = settings
        self.store = store
        self.clock = clock
        self.actions = actions if actions is not None else SiteActions(settings, store)
        self.report = report or (lambda _r: None)
        self.delivery = delivery or delivery_stage
        self.schedules, self.problems = read_schedules(settings, clock(), store)
        self.rejected = ""
        self.lock = threading.Lock()

    def stage(self, ctx: PassContext) -> StageReport:
        reports = tick(ctx.store, self.schedules, ctx.load.articles, ctx.now, self.actions)
        failed = [r for r in reports if r.outcome == "failed"]
        return StageReport("schedule", summarise(reports), failed=bool(failed))

    def run_pass(self) -> PassReport:
        """Load, record publications, fire what is due, then every other stage."""
        with self.lock:
            stages = with_delivery_stage(default_stages(), self.delivery)
            report = run_pass(self.settings, self.store, self.clock(),
                              with_schedule_stage(stages, self.stage),
                              social_schedules=partial(social_schedules, self.settings))
        self.report(report)
        return report

    def reload(self) -> tuple[bool, list[Problem]]:
        """Re-read schedules.yaml; an invalid edit leaves the schedules in force."""
        with self.lock:
            result = reload_schedules(self.settings, self.schedules, self.clock(), self.store,
                                      self.rejected)
            self.schedules = result.schedules
            if result.problems and not result.changed:
                self.rejected = result.fingerprint
            return result.changed, result.problems


class NextFiring(BaseTrigger):  # type: ignore[misc]
    """An APScheduler trigger that only relays our own next firing time
    (:mod:`dispatch.schedule.triggers` computes it; it is here, beside the
    rest of APScheduler, so that checking schedules.yaml never imports it).

    APScheduler asks ``get_next_fire_time(previous, now)``: the first firing
    after the one it just ran, or (when first added) the first one from now
    on. A one-off date already past gives None, so the job is not added to
    run late with APScheduler's "was missed by" complaint.
    """

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule

    def get_next_fire_time(self, previous_fire_time: datetime | None,
                           now: datetime) -> datetime | None:
        if previous_fire_time is not None:
            return next_firing(self.schedule, previous_fire_time)
        return next_firing(self.schedule, now - timedelta(microseconds=1))

    def __str__(self) -> str:
        return f"{self.schedule.trigger} ({self.schedule.tz.key})"


def _job_options(grace: timedelta) -> dict[str, object]:
    return {"misfire_grace_time": max(1, int(grace.total_seconds())), "coalesce": True,
            "max_instances": 1, "replace_existing": True}


def install_jobs(scheduler: BackgroundScheduler, service: SchedulerService,
                 schedules: ScheduleSet, interval: float) -> None:
    """(Re)create every job from the schedules in force; stable ids."""
    # Remove first: before start() APScheduler keeps jobs in a pending list
    # where replace_existing does not apply, so a reload would duplicate them.
    for job in scheduler.get_jobs():
        if job.id == "pass" or job.id.startswith("schedule:"):
            job.remove()
    scheduler.add_job(service.run_pass, IntervalTrigger(seconds=interval,
                      timezone=ZoneInfo("UTC")), id="pass", **_job_options(timedelta(minutes=5)))
    now = service.clock()
    for schedule in schedules.schedules:
        if schedule.on_publish or not schedule.enabled:
            continue  # on-publish firings are found by the periodic pass
        if next_firing(schedule, now) is None:
            continue  # a one-off already past: nothing to wake for (``check`` says why)
        # APScheduler only wakes us at the instant we computed; what is due
        # is then decided by ``engine.tick`` from the same functions.
        scheduler.add_job(service.run_pass, NextFiring(schedule), id=f"schedule:{schedule.id}",
                          name=schedule.id, **_job_options(schedule.max_lateness))


def serve(settings: Settings, store: Store, stop: threading.Event, clock: Clock, *,
          interval: float = 60.0, standby_poll: float = 10.0,
          say: Callable[[str], None] = print, actions: Actions | None = None,
          report: Callable[[PassReport], None] | None = None,
          leadership: Leadership | None = None,
          delivery: BackgroundDelivery | None = None) -> None:
    """Wait as a standby until we lead, then schedule until ``stop`` or loss of the lock.

    With ``delivery`` (whose stop event must be ``stop``), that thread sends
    from start to stop, leader or standby, and passes only report on it;
    without, each pass ends with a burst that ``stop`` cuts short.
    """
    from dispatch.delivery.stage import burst_delivery

    leader = leadership if leadership is not None else leadership_for(store, settings.state_dir)
    stage = delivery.stage if delivery is not None else burst_delivery(stop)
    if delivery is not None:
        delivery.start()
    try:
        while not stop.is_set():
            if not leader.try_acquire():
                say(f"standby: another scheduler is active; checking every {standby_poll:g}s")
                while not stop.wait(standby_poll) and not leader.try_acquire():
                    pass
                if stop.is_set():
                    return
            say("leader: this process runs the schedules")
            _lead(settings, store, stop, clock, interval, standby_poll, say, actions, report,
                  leader, stage)
    finally:
        leader.release()
        if delivery is not None:
            stop.set()  # also when leaving on an error: the thread must not outlive us
            delivery.join()


def _lead(settings: Settings, store: Store, stop: threading.Event, clock: Clock,
          interval: float, poll: float, say: Callable[[str], None], actions: Actions | None,
          report: Callable[[PassReport], None] | None, leader: Leadership,
          delivery: Stage) -> None:
    service = SchedulerService(settings, store, clock, actions, report, delivery)
    for problem in service.problems:
        say(str(problem))
    scheduler = BackgroundScheduler(
        jobstores={"default": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"misfire_grace_time": 3600, "coalesce": True, "max_instances": 1},
        timezone=ZoneInfo(settings.site.timezone))
    install_jobs(scheduler, service, service.schedules, interval)
    scheduler.start()
    try:
        scheduler.add_job(service.run_pass, id="start", **_job_options(timedelta(minutes=5)))
        while not stop.wait(poll):
            if not leader.still_held():
                say("leadership lost (database connection dropped); back to standby")
                return
            changed, problems = service.reload()
            for problem in problems:
                say(str(problem))
            if changed:
                say(f"schedules.yaml reloaded: {len(service.schedules.schedules)} schedule(s)")
                install_jobs(scheduler, service, service.schedules, interval)
            elif any(p.is_error for p in problems):
                say("schedules.yaml has errors; the previous schedules stay in force")
    finally:
        scheduler.shutdown(wait=True)
