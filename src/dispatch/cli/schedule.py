"""schedules, plan, trigger: looking at and firing what ``schedules.yaml`` says."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import click

from dispatch.cli.base import Site, console, now, print_problems, site_command
from dispatch.errors import InputError, Problem, ScheduleError
from dispatch.pipeline import load
from dispatch.schedule import firings
from dispatch.schedule.actions import SiteActions
from dispatch.schedule.decide import since_text
from dispatch.schedule.engine import trigger_now
from dispatch.schedule.model import Schedule, ScheduleSet
from dispatch.schedule.plan import PlannedFiring, next_window, preview_trigger
from dispatch.schedule.plan import plan as plan_firings
from dispatch.schedule.planview import firing_json, firing_subject
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
    articles = load(site.settings, site.store).articles if any(
        s.kind in ("digest", "social") for s in schedule_set.schedules) else []
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
        if s.kind == "digest" or (s.kind == "social" and not s.on_publish):
            start, count = next_window(site.store, s, articles, current)
            noun = "article" if count == 1 else "articles"
            console.print(f"    window: {count} new {noun} {since_text(start, s)} "
                          f"({s.tz.key})", markup=False)
        run = last.get(s.id)
        previous = "never" if run is None else (
            f"{run.status} {_when(run.fire_time, s)}" + (f" {run.article}" if run.article else "")
            + (f": {run.reason}" if run.reason else ""))
        console.print(f"    last: {previous}", markup=False)
    if not schedule_set.schedules:
        console.print("no schedules (add them to schedules.yaml)")


def _parse_until(text: str, tz_name: str, *, start_of_day: bool = False,
                 option: str = "--until") -> datetime:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(tz_name)
    try:
        if len(text) == 10:  # a date: until the end of that day (from its start), site time
            day = datetime.strptime(text, "%Y-%m-%d").date()
            # "From" a day includes a firing at its very first instant.
            edge = (datetime.combine(day, time(0), tzinfo=tz) - timedelta(microseconds=1)
                    if start_of_day else datetime.combine(day, time(23, 59, 59), tzinfo=tz))
            return edge
        value = datetime.fromisoformat(text)
        value = value if value.tzinfo else value.replace(tzinfo=tz)
        value.astimezone(UTC)  # the ends of the calendar overflow here, not deep in the planner
    except (ValueError, OverflowError):
        raise InputError([Problem(option, f"{text!r} is not a date", None, None,
                                  "YYYY-MM-DD or YYYY-MM-DDTHH:MM")]) from None
    return value


# The planner walks every day from now to --until: a plan to 9999 would run
# for hours (and overflow the calendar), and nobody plans sends that far.
PLAN_YEARS = 10


@click.command()
@click.option("--until", "until_text", metavar="DATE",
              help="Plan up to this date (YYYY-MM-DD, site time). Default: 7 days.")
@click.option("--from", "from_text", metavar="DATE",
              help="Show firings from this date on (YYYY-MM-DD, site time). Default: now.")
@click.option("--schedule", "schedule_ids", metavar="ID", multiple=True,
              help="Only this schedule (repeat for more).")
@click.option("--kind", "kinds", multiple=True,
              type=click.Choice(["digest", "article", "social", "feeds"]),
              help="Only schedules of this kind (repeat for more).")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per firing: schedule, kind, fire time with offset, "
                   "what it would send or why it would skip, and its window.")
@site_command
def plan(site: Site, until_text: str | None, from_text: str | None,
         schedule_ids: tuple[str, ...],
         kinds: tuple[str, ...], as_json: bool) -> None:
    """Dry run: each firing until DATE and what it would send. Queues nothing."""
    current = now()
    until = (_parse_until(until_text, site.settings.site.timezone) if until_text
             else current + timedelta(days=7))
    since = None
    if from_text:
        since = _parse_until(from_text, site.settings.site.timezone, start_of_day=True,
                             option="--from")
    horizon = current + timedelta(days=366 * PLAN_YEARS)
    if until > horizon:
        raise InputError([Problem("--until", f"{until_text!r} is more than {PLAN_YEARS} years "
                                  "ahead", None, None, f"a date before {horizon:%Y-%m-%d}")])
    if since is not None and since >= until:
        raise InputError([Problem("--from", f"{from_text!r} is not before --until "
                                  f"{until:%Y-%m-%d %H:%M}", None, None,
                                  "a --from date earlier than --until")])
    schedule_set = _schedules(site, current)
    unknown = [i for i in schedule_ids if schedule_set.get(i) is None]
    if unknown:
        known = ", ".join(s.id for s in schedule_set.schedules) or "none"
        raise ScheduleError(f"no valid schedule {unknown[0]!r} in schedules.yaml "
                            f"(schedules: {known})")
    chosen = tuple(s for s in schedule_set.schedules
                   if (not schedule_ids or s.id in schedule_ids)
                   and (not kinds or s.kind in kinds))
    schedule_set = replace(schedule_set, schedules=chosen)
    result = load(site.settings, site.store)
    actions = SiteActions(site.settings, site.store)
    planned = plan_firings(site.store, schedule_set, result.articles, current, until,
                           actions.audience_size, since)
    if as_json:
        click.echo(json.dumps([firing_json(p, _subject(site, p, quoted=False)) for p in planned],
                              indent=2, ensure_ascii=False))
        return
    if not planned:
        console.print(f"nothing would fire before {until:%Y-%m-%d %H:%M %Z}")
        return
    for p in planned:
        _print_planned(p, _subject(site, p))


def _subject(site: Site, p: PlannedFiring, *, quoted: bool = True) -> str | None:
    text = firing_subject(site.settings, p)
    return _quoted(text) if quoted and text is not None and not text.startswith(
        "cannot be rendered") else text


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
    if p.window is not None:
        count = len(p.articles)
        console.print(f"    window: {count} new {'article' if count == 1 else 'articles'} "
                      f"{since_text(p.window[0], p.schedule)}", markup=False)
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
