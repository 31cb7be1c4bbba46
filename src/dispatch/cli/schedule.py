"""schedules, plan, trigger: looking at and firing what ``schedules.yaml`` says."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import click

from dispatch.cli.base import Site, console, now, print_problems, site_command
from dispatch.errors import InputError, Problem, ScheduleError
from dispatch.pipeline import load
from dispatch.schedule import firings
from dispatch.schedule.actions import SiteActions, edition_subject
from dispatch.schedule.decide import edition_id
from dispatch.schedule.engine import failure_reason, trigger_now
from dispatch.schedule.model import EMAIL_KINDS, Schedule, ScheduleSet
from dispatch.schedule.plan import PlannedFiring, preview_trigger
from dispatch.schedule.plan import plan as plan_firings
from dispatch.schedule.sitefile import read_schedules
from dispatch.schedule.triggers import next_firings


def _schedules(site: Site, current: datetime) -> ScheduleSet:
    schedule_set, problems = read_schedules(site.settings, current, site.store)
    print_problems(problems)
    return schedule_set


def _when(instant: datetime, schedule: Schedule) -> str:
    local = instant.astimezone(schedule.tz)
    return f"{local:%a %Y-%m-%d %H:%M %Z} ({instant.astimezone(UTC):%H:%M} UTC)"


@click.command()
@site_command
def schedules(site: Site) -> None:
    """List each schedule with its next three firings (its own timezone and UTC)."""
    current = now()
    schedule_set = _schedules(site, current)
    last = {s.schedule_id: s.last for s in firings.runs_summary(site.store)}
    for s in schedule_set.schedules:
        console.print(f"{s.id}  [{s.kind}]  {s.trigger}  ({s.tz.key})", markup=False)
        if not s.enabled:
            upcoming = ["paused (enabled: false)"]
        elif s.on_publish:
            upcoming = ["when an article is published"]
        else:
            upcoming = [_when(f, s) for f in next_firings(s, current, 3)] or ["none"]
        for i, line in enumerate(upcoming):
            console.print(f"    {'next: ' if i == 0 else '      '}{line}", markup=False)
        run = last.get(s.id)
        previous = "never" if run is None else (
            f"{run.status} {_when(run.fire_time, s)}" + (f" {run.article}" if run.article else "")
            + (f": {run.reason}" if run.reason else ""))
        console.print(f"    last: {previous}", markup=False)
    if not schedule_set.schedules:
        console.print("no schedules (add them to schedules.yaml)")


def _parse_until(text: str, tz_name: str) -> datetime:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(tz_name)
    try:
        if len(text) == 10:  # a date: until the end of that day, site time
            day = datetime.strptime(text, "%Y-%m-%d").date()
            return datetime.combine(day, time(23, 59, 59), tzinfo=tz)
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InputError([Problem("--until", f"{text!r} is not a date", None, "--until",
                                  "YYYY-MM-DD or YYYY-MM-DDTHH:MM")]) from None
    return value if value.tzinfo else value.replace(tzinfo=tz)


@click.command()
@click.option("--until", "until_text", metavar="DATE",
              help="Plan up to this date (YYYY-MM-DD, site time). Default: 7 days.")
@site_command
def plan(site: Site, until_text: str | None) -> None:
    """Dry run: each firing until DATE and what it would send. Queues nothing."""
    current = now()
    until = (_parse_until(until_text, site.settings.site.timezone) if until_text
             else current + timedelta(days=7))
    schedule_set = _schedules(site, current)
    result = load(site.settings, site.store)
    actions = SiteActions(site.settings, site.store)
    planned = plan_firings(site.store, schedule_set, result.articles, current, until,
                           actions.audience_size)
    if not planned:
        console.print(f"nothing would fire before {until:%Y-%m-%d %H:%M %Z}")
        return
    for p in planned:
        _print_planned(p, _subject(site, p))


def _subject(site: Site, p: PlannedFiring) -> str | None:
    """The subject line the firing's email would have, rendered as it will be."""
    if p.verdict != "send" or p.schedule.kind not in EMAIL_KINDS or not p.articles:
        return None
    slug = p.articles[0].slug if p.schedule.kind == "article" else ""
    try:
        return _quoted(edition_subject(site.settings, p.schedule, p.articles,
                                            edition_id(p.schedule, p.fire_time, slug)))
    except InputError as exc:
        return f"cannot be rendered: {failure_reason(exc)}"


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


def _print_planned(p: PlannedFiring, subject: str | None = None) -> None:
    when = _when(p.starts_at, p.schedule)
    if p.starts_at != p.fire_time:
        when += f" (due {p.fire_time.astimezone(p.schedule.tz):%H:%M}, after quiet hours)"
    console.print(f"{when}  {p.schedule.id} [{p.schedule.kind}]", markup=False)
    if p.verdict == "skip":
        console.print(f"    skipped: {p.reason}", markup=False)
        return
    if p.schedule.kind in ("digest", "article"):
        console.print(f"    to {', '.join(p.schedule.audience)}: {p.audience_size} "
                      "subscriber(s)", markup=False)
    if subject is not None:
        console.print(f"    subject: {subject}", markup=False)
    if p.schedule.kind == "social":
        networks = ", ".join(p.schedule.networks or ()) or "every configured network"
        console.print(f"    networks: {networks}", markup=False)
    if p.schedule.kind == "feeds":
        console.print("    rebuild RSS, Atom and JSON feeds", markup=False)
    for article in p.articles:
        console.print(f"    - {article.title} ({article.slug})", markup=False)


@click.command()
@click.argument("schedule_id")
@click.option("--dry-run", is_flag=True, help="Show what would be sent; record and queue nothing.")
@click.option("--article", "slug", help="For an on-publish schedule: which article.")
@site_command
def trigger(site: Site, schedule_id: str, dry_run: bool, slug: str | None) -> None:
    """Fire schedule ID now (recorded once, like any firing)."""
    current = now()
    schedule_set = _schedules(site, current)
    schedule = schedule_set.get(schedule_id)
    if schedule is None:
        known = ", ".join(s.id for s in schedule_set.schedules) or "none"
        raise ScheduleError(f"no valid schedule {schedule_id!r} in schedules.yaml "
                            f"(schedules: {known})")
    result = load(site.settings, site.store)
    actions = SiteActions(site.settings, site.store)
    if dry_run:
        preview = preview_trigger(site.store, schedule, result.articles, current,
                                  actions.audience_size, slug)
        _print_planned(preview, _subject(site, preview))
        console.print("dry run: nothing recorded or queued")
        return
    fired = trigger_now(site.store, schedule, result.articles, current, actions, slug)
    if fired is None:
        console.print(f"{schedule_id} already fired at this moment; nothing done")
        return
    console.print(f"{schedule_id}: {fired.outcome}"
                  + (f" ({fired.article})" if fired.article else "")
                  + (f": {fired.detail}" if fired.detail else ""), markup=False)
    if fired.outcome == "failed":
        raise SystemExit(1)
