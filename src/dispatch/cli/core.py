"""check, articles, run."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING

import click

from dispatch.cli.base import Site, console, err_console, now, print_problems, site_command

if TYPE_CHECKING:
    from dispatch.pipeline import PassReport

# Each command imports what it uses when it runs (start-up is paid by every
# command; tests/test_cli_startup.py keeps `check` and `articles` light).


@click.command()
@site_command
def check(site: Site) -> None:
    """Validate articles and configuration; exit 1 if anything is an error."""
    from dispatch.checks import all_problems
    from dispatch.unsubscribe import secret_key_note

    problems = all_problems(site.settings, now())
    print_problems(problems)
    note = secret_key_note(site.settings)
    if note:
        err_console.print(f"note: {note}", markup=False)
    from dispatch.dkim.status import dkim_status

    console.print(dkim_status(site.settings, os.environ)[0], markup=False)
    errors = sum(1 for p in problems if p.is_error)
    warnings = len(problems) - errors
    # The pass's rule (README, "An article with errors"): a post that cannot be
    # written holds back only that post, so it is not counted here.
    held = sorted({p.path for p in problems if p.is_error and _is_article(site, p.path)
                   and not (p.field or "").startswith("social.")})
    if held:
        console.print(f"{len(held)} article(s) with errors reach no feed, post or email "
                      f"until fixed: {', '.join(held)}", markup=False)
    console.print(f"{errors} error(s), {warnings} warning(s)")
    raise SystemExit(1 if errors else 0)


def _is_article(site: Site, path: str) -> bool:
    """Whether a problem's path is an article in the content folder (a key
    file or template that happens to end in .md is not)."""
    if not path.endswith(".md"):
        return False
    where = site.settings.root / path
    try:
        # The folder is resolved, not the file: the file may be a symlink
        # loop, which is exactly the kind of problem being reported.
        (where.parent.resolve() / where.name).relative_to(site.settings.content_dir.resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


@click.command()
@site_command
def articles(site: Site) -> None:
    """List articles: slug, status, date, category, key takeaway."""
    from rich.table import Table

    from dispatch.pipeline import load

    result = load(site.settings, site.store)
    current = now()
    table = Table()
    # The slug is what preview/send/social need typed in: never cut it short
    # (the other columns give way on a narrow terminal).
    table.add_column("slug", no_wrap=True,
                     min_width=max([4] + [len(a.slug) for a in result.articles]))
    table.add_column("status", no_wrap=True, min_width=9)
    for name in ("date", "category", "takeaway"):
        table.add_column(name)
    for article in result.articles:
        if article.status == "draft":
            status = "draft"
        elif article.is_published(current):
            status = "published"
        else:
            status = "scheduled"
        local = article.date.astimezone(site.settings.site.tz)
        table.add_row(article.slug, status, local.strftime("%Y-%m-%d %H:%M %Z"),
                      article.category or "", "yes" if article.takeaway else "no")
    console.print(table)
    if result.errors:
        print_problems(result.errors)


def _print_report(report: PassReport) -> None:
    if report.first and report.new:
        # A fresh install's back catalogue is recorded, not news: calling it
        # "new" and then "not announced" read like a contradiction.
        fresh = f"{len(report.new)} already published (recorded, not announced)"
    else:
        fresh = (f"new {len(report.new)}"
                 f"{' (' + ', '.join(report.new) + ')' if report.new else ''}")
    console.print(
        f"loaded {report.loaded}, published {report.published}, {fresh}, "
        f"changed {len(report.changed)}, errors {report.errors}", markup=False)
    print_problems(p for p in report.problems if p.is_error)
    if report.held:
        console.print(f"  held back until their errors are fixed (no feed, post or email): "
                      f"{', '.join(report.held)}", markup=False)
    for stage in report.stages:
        console.print(f"  {stage.stage}: {stage.summary}", markup=False)
        print_problems(stage.problems)


def _stop_on_signals() -> threading.Event:
    """SIGTERM and Ctrl-C set an event instead of killing the process, so
    delivery hands back the rows it holds and the scheduler stops cleanly."""
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return stop


@click.command()
@click.option("--once", is_flag=True,
              help="Do one full pass (including schedule firings due now), deliver what is "
                   "due, and exit.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
              help="Seconds between passes when running continuously.")
@click.option("--poll", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds between leadership / schedules.yaml checks.")
@site_command
def run(site: Site, once: bool, interval: float, poll: float) -> None:
    """Run the pipeline and the scheduler: one pass with --once, otherwise until
    Ctrl-C or SIGTERM, delivering all along beside the passes. Only one process
    per database runs the schedules; a second one waits as a standby (and
    delivers) and takes over if the first one dies."""
    from dispatch.delivery.stage import BackgroundDelivery, burst_delivery
    from dispatch.pipeline import default_stages, run_pass
    from dispatch.schedule.coverage import social_schedules
    from dispatch.schedule.leader import leadership_for
    from dispatch.schedule.runner import SchedulerService, serve, with_delivery_stage
    from dispatch.unsubscribe import require_secret_key

    require_secret_key(site.store)  # on PostgreSQL: a shared key, never a per-machine one
    stop = _stop_on_signals()
    if once:
        current = now()
        delivery = burst_delivery(stop)
        leader = leadership_for(site.store, site.settings.state_dir)
        if leader.try_acquire():
            try:
                service = SchedulerService(site.settings, site.store, lambda: current,
                                           delivery=delivery)
                print_problems(service.problems)
                report = service.run_pass()
            finally:
                leader.release()
        else:
            console.print("another scheduler is active: schedule firings are left to it")
            report = run_pass(site.settings, site.store, current,
                              with_delivery_stage(default_stages(), delivery),
                              social_schedules=lambda: social_schedules(site.settings))
        _print_report(report)
        raise SystemExit(0 if report.ok else 1)

    console.print(f"running every {interval:g}s; Ctrl-C to stop")
    background = BackgroundDelivery(site.settings, site.store, now, stop)
    serve(site.settings, site.store, stop, now, interval=interval, standby_poll=poll,
          say=lambda text: console.print(text, markup=False), report=_print_report,
          delivery=background)
    if background.last is not None:
        console.print(f"  delivery: {background.last.summary()}", markup=False)
    console.print("stopped")
