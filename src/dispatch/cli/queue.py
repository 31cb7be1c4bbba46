"""``dispatch queue`` (editions and their counts; pause/resume/cancel/retry),
``dispatch send`` (queue an edition now) and ``dispatch worker`` (deliver)."""

from __future__ import annotations

import email
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, time, timedelta
from email import policy
from pathlib import Path
from types import FrameType

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from dispatch import digest as digest_rule
from dispatch.cli.base import (
    Site,
    console,
    err_console,
    missing_article,
    now,
    print_problems,
    site_command,
)
from dispatch.config import Settings
from dispatch.errors import DeliveryError, InputError, Problem
from dispatch.outbox import (
    audience_size,
    cancel,
    edition_status,
    edition_statuses,
    failure_reasons,
    pause,
    queue_edition,
    resume,
    retry_failed,
)
from dispatch.store.engine import Store
from dispatch.subscribers import unknown_lists


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f} msg/s" if task.speed else "… msg/s")


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar with rate and ETA, fed by deliver's (done, total) callback."""
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), RateColumn(),
                  TextColumn("ETA"), TimeRemainingColumn(), console=err_console,
                  transient=False) as bar:
        # Hidden until there is something to send: a run with nothing due
        # should not draw an empty "0/?" bar.
        task = bar.add_task(label, total=None, visible=False)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, visible=total > 0)

        yield update


def _stop_on_sigterm() -> threading.Event:
    stop = threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    return stop


def _deliver_foreground(site: Site, *, burst: bool) -> list[str]:
    """Deliver; for a burst, the lines saying what is left (none when done)."""
    from dispatch.delivery import deliver
    from dispatch.unsubscribe import require_secret_key

    require_secret_key(site.store)  # on PostgreSQL: a shared key, never a per-machine one
    stop = _stop_on_sigterm()
    with progress_bar("sending") as update:
        report = deliver(site.store, site.settings, now(), burst=burst, stop=stop,
                         progress=update)
    console.print(report.summary(), markup=False)
    return what_is_left(site) if burst and not report.dry_run else []


def _exit_if_left(left: list[str]) -> None:
    """Say what is left; exit 75 when messages wait for a retry. Leases alone
    are said but are not a failure: another worker may be sending them now
    (several bursts drain one queue together), and if it was killed they
    come back when the lease runs out."""
    for line in left:
        err_console.print(line, markup=False)
    if any(line.startswith("not done:") for line in left):
        raise SystemExit(EX_TEMPFAIL)


EX_TEMPFAIL = 75
"""sysexits.h's "temporary failure, try again later": what a burst exits with
when rows are left (server unreachable, retries pending, leases held)."""


def what_is_left(site: Site) -> list[str]:
    """Lines saying what a burst left in the outbox and when it moves again;
    none when the outbox holds nothing pending for a sending edition."""
    from dispatch.outbox.backlog import email_backlog

    left = email_backlog(site.store)
    lines: list[str] = []
    if left.waiting:
        when = (f"{left.next_due:%Y-%m-%d %H:%M:%S} UTC" if left.next_due is not None
                else "the next run")
        lines.append(f"not done: {left.waiting} message(s) still queued; the next retry is due "
                     f"{when} (`dispatch worker` or the next `dispatch run` pass sends them)")
    if left.leased:
        until = (f"{left.lease_ends:%Y-%m-%d %H:%M:%S} UTC" if left.lease_ends is not None
                 else "its lease runs out")
        held = f" by {', '.join(left.owners)}" if left.owners else ""
        lines.append(f"note: {left.leased} message(s) leased{held} until {until}; "
                     "if that worker was stopped or killed they are retried after then")
    return lines


@click.group(invoke_without_command=True)
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="The site folder.")
@click.option("--verbose", "-v", is_flag=True,
              help="Say more: the commonest failure reasons of each edition.")
@click.pass_context
def queue(ctx: click.Context, root: Path, verbose: bool) -> None:
    """Queued editions with their counts (queued = sent + failed + suppressed + cancelled +
    pending); subcommands pause, resume, cancel and retry."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(show, root=root, verbose=verbose)


@queue.command("list")
@site_command
def show(site: Site) -> None:
    """Each edition and social post with its state and counts (the same as plain
    `dispatch queue`)."""
    rows = edition_statuses(site.store)
    _show_posts(site.store)
    if not rows:
        console.print("no editions queued", markup=False)
        return
    for e in rows:
        # One line per edition, spelled as the reconciliation it must satisfy.
        console.print(
            f"{e.edition_id}  [{e.state}]  queued {e.total} = sent {e.sent} + failed {e.failed}"
            f" + suppressed {e.suppressed} + cancelled {e.cancelled} + pending {e.pending}"
            f"  to {'+'.join(e.audience)}", markup=False)
    for e in rows:
        if e.note and e.state == "paused":
            console.print(f"{e.edition_id}: {e.note}", markup=False)
        if site.verbose and e.failed:
            _print_reasons(site.store, e.edition_id)
        if not e.reconciles:  # never expected; say so loudly if it happens
            err_console.print(f"{e.edition_id}: counts do not reconcile", style="red")


def _show_posts(store: Store) -> None:
    """Social posts, one line each, named as the controls take them (SLUG@NETWORK)."""
    from dispatch.social.queue import posts_for

    for row in posts_for(store):
        line = f"{row['slug']}@{row['network']}  [{row['status']}]  attempts {row['attempts']}"
        if row["remote_url"] or row["remote_id"]:
            line += f"  {row['remote_url'] or row['remote_id']}"
        if row["last_error"] and row["status"] != "sent":
            line += f"  ({row['last_error']})"
        console.print(line, markup=False)


def _print_reasons(store: Store, edition_id: str, limit: int = 3) -> None:
    """The commonest reasons rows failed, so nobody has to query the outbox."""
    reasons = failure_reasons(store, edition_id, limit)
    console.print(f"{edition_id}: failed rows, commonest reason(s) first:", markup=False)
    for detail, n in reasons:
        console.print(f"  {n:>6} × {detail}", markup=False)


Control = Callable[[Store, str, datetime], object]


def _post_control(action: str) -> Control:
    """The social post's control, imported when used (the social package
    pulls in httpx, which plain `dispatch queue` does not need)."""
    def run(store: Store, name: str, at: datetime) -> object:
        from dispatch.social import queue as social_queue

        fn: Control = getattr(social_queue, action)
        return fn(store, name, at)
    return run


def _is_post(store: Store, name: str) -> bool:
    """SLUG@NETWORK names a social post; anything else an edition (an edition
    id never holds "@": the CLI and the scheduler build them from slugs,
    list names and times)."""
    if "@" not in name:
        return False
    return not edition_statuses(store, name)


def _control(action: str, email: Control, post: Control) -> click.Command:
    @click.argument("target", metavar="EDITION|SLUG@NETWORK")
    @site_command
    def command(site: Site, target: str) -> None:
        social = _is_post(site.store, target)
        result = (post if social else email)(site.store, target, now())
        state: str
        if social:
            from dispatch.social.queue import post_status

            found = post_status(site.store, target)
            state, sent, pending = found.state, found.counts["sent"], found.pending
            queued = found.counts["queued"]
        else:
            status = edition_status(site.store, target)
            state, sent, pending, queued = (status.state, status.sent, status.pending,
                                            status.queued)
        if result is False:  # pause of a non-sending target, resume of a non-paused one
            raise InputError(f"{target} is {state}, so {action} changed nothing")
        if action == "retry" and result == 0 and not isinstance(result, bool):
            raise InputError(f"{target} has no failed row of a still-active subscriber, so "
                             f"retry changed nothing (now {state}, {sent} sent)")
        detail = f" ({result} row(s))" if isinstance(result, int) and not isinstance(
            result, bool) else ""
        console.print(f"{target}: {action}{detail}; now {state}, {sent} sent, "
                      f"{pending} pending", markup=False)
        if action == "retry" and state == "paused" and queued:
            # retry never un-pauses: that stays the operator's explicit call.
            console.print(f"{target} is still paused: the re-queued rows wait for "
                          f"`dispatch queue resume {target}`", markup=False)

    command.__doc__ = {
        "pause": "Stop claiming an edition's rows or a social post (in-flight sends finish).",
        "resume": "Resume a paused edition or post; nobody who already got it gets it again.",
        "cancel": "Cancel an edition or post: everything waiting becomes cancelled.",
        "retry": "Re-queue failed rows of still-active subscribers, or a failed post (a "
                 "paused edition stays paused; a cancelled one is refused).",
    }[action]
    return click.command(action)(command)


queue.add_command(_control("pause", pause, _post_control("pause")))
queue.add_command(_control("resume", resume, _post_control("resume")))
queue.add_command(_control("cancel", cancel, _post_control("cancel")))
queue.add_command(_control("retry", retry_failed, _post_control("retry_failed")))


def _sample(settings: Settings, edition: object, at: datetime) -> str:
    """One personalised message, shown by --dry-run: headers and the text part.

    It is made out to a made-up reader (the one ``preview`` uses), never to a
    real subscriber: a dry run is often pasted into a ticket or a chat."""
    from dispatch.cli.email import sample_recipient
    from dispatch.render import Edition, MessageFactory

    assert isinstance(edition, Edition)
    raw = MessageFactory(edition, settings).build(sample_recipient(settings), date=at)
    message = email.message_from_bytes(raw, policy=policy.default)
    # A folded header's value keeps the space that followed the line break.
    head = "\n".join(f"{k}: {str(v).strip()}" for k, v in message.items())
    body = message.get_body(("plain",))
    text = body.get_content() if body is not None else ""
    return f"{head}\n\n{text}"


@click.command()
@click.argument("slug", required=False)
@click.option("--audience", "audience", multiple=True,
              help="A subscriber list; repeat for several (each person gets one copy).")
@click.option("--digest", is_flag=True, help="Send a digest of recent articles instead.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]),
              help="Digest: articles published on or after this date (default: 7 days ago).")
@click.option("--subject", help="Override the subject template.")
@click.option("--edition-id", help="Override the edition id (it is what makes sending once).")
@click.option("--dry-run", is_flag=True, help="Show the audience size and a sample message; "
              "queue nothing.")
@click.option("--deliver", "deliver_now", is_flag=True,
              help="Deliver right away in the foreground after queueing.")
@click.option("--test", "test_to", multiple=True, metavar="ADDR",
              help="Send a [TEST] copy to ADDR only (repeat for more); nothing is "
                   "queued or counted, and the edition itself is unaffected.")
@site_command
def send(site: Site, slug: str | None, audience: tuple[str, ...], digest: bool,
         since: datetime | None, subject: str | None, edition_id: str | None, dry_run: bool,
         deliver_now: bool, test_to: tuple[str, ...]) -> None:
    """Queue SLUG (or --digest) for the --audience lists now (or --test it)."""
    from dispatch.checks import article_errors
    from dispatch.pipeline import load
    from dispatch.render import render_article_edition, render_digest_edition

    if digest == bool(slug):
        raise InputError("give either an article SLUG or --digest")
    if test_to and (dry_run or deliver_now):
        raise InputError("--test sends at once; it does not go with --dry-run or --deliver")
    if not audience and not test_to:
        raise InputError("give --audience LIST (repeat for several lists), "
                         "or --test ADDR to send yourself a test")
    if test_to:
        from dispatch.staff.testsend import test_addresses
        addresses = test_addresses(test_to)
        audience = audience or ("test",)
    lists = sorted(set(audience))
    missing = [] if test_to else unknown_lists(site.store, lists)
    if missing:
        raise InputError(f"no subscriber list named {', '.join(missing)} "
                         "(create one with `dispatch subscribers import FILE --list NAME`)")
    current = now()
    loaded = load(site.settings, site.store)
    articles = list(loaded.articles)
    tag = "+".join(lists)
    if digest:
        tz = site.settings.site.tz
        start = (datetime.combine(since.date(), time(), tz) if since
                 else current - timedelta(days=7))
        # The scheduler's rule (dispatch.digest), with a window that includes
        # its start ("on or after") and an id named by what it holds.
        published = digest_rule.published_at(articles, current)
        window = digest_rule.Window(start, current, includes_start=True)
        candidates = digest_rule.choose(published, window)
        errors = article_errors(site.settings, candidates, email_checked=len(candidates))
        if errors:
            # The same rule as a pass: an article with errors reaches no channel.
            print_problems(p for found in errors.values() for p in found)
            err_console.print("left out of the digest until their errors are fixed: "
                              + ", ".join(sorted(errors)), markup=False)
        chosen = digest_rule.decide(
            published, window, digest_rule.ByHand(tuple(lists)),
            wanted=lambda a: digest_rule.wants_email(a) and a.source not in errors)
        if not chosen.articles:
            raise InputError(f"no published articles since {start:%Y-%m-%d} for a digest")
        eid = edition_id or chosen.edition_id
        edition = render_digest_edition(site.settings, list(chosen.articles), eid,
                                        subject=subject)
    else:
        found = [a for a in articles if a.slug == slug]
        if not found:
            raise missing_article(loaded, slug or "")
        if not found[0].is_published(current):
            raise InputError(f"{slug} is not published yet (draft or future date)")
        if not found[0].email and not test_to:
            # The rule digests and article schedules follow (README: `email`).
            raise InputError(f"{slug} has `email: false` in its frontmatter, so it is kept "
                             "out of emails (remove that line to send it; --test still "
                             "sends you a copy)")
        own = article_errors(site.settings, found[:1]).get(found[0].source)
        if own:
            raise InputError([*own, Problem(found[0].source, f"{slug!r} has errors: it "
                                               "reaches no feed, post or email until they "
                                               "are fixed")])
        eid = edition_id or f"{slug}.{tag}"
        edition = render_article_edition(site.settings, found[0], eid, subject=subject)
    if test_to:
        _send_test(site, edition, addresses, current)
        return
    if dry_run:
        console.print(f"edition {eid}: {audience_size(site.store, lists)} recipient(s) "
                      f"in {', '.join(lists)}; nothing queued", markup=False)
        console.print(_sample(site.settings, edition, current), markup=False)
        return
    queued = queue_edition(site.store, edition, lists, current)
    if queued.created:
        console.print(f"edition {eid}: queued for {queued.queued} recipient(s)"
                      + (f", {queued.skipped} not active left out" if queued.skipped else ""),
                      markup=False)
    else:
        console.print(f"edition {eid} was already queued ({queued.queued} recipient(s)); "
                      "nothing more queued", markup=False)
    if deliver_now:
        left = _deliver_foreground(site, burst=True)
        if edition_status(site.store, eid).failed:
            _print_reasons(site.store, eid)
        _exit_if_left(left)


def _send_test(site: Site, edition: object, addresses: list[str], at: datetime) -> None:
    from dispatch.render import Edition
    from dispatch.staff.testsend import send_test, test_edition

    assert isinstance(edition, Edition)
    outcomes = send_test(site.settings, edition, addresses, at)
    console.print(f"test of {edition.edition_id}: {test_edition(edition).subject!r}; "
                  "nothing queued or counted", markup=False)
    for o in outcomes:
        console.print(f"  {o.address}: {'sent' if o.ok else 'NOT sent'} ({o.detail})",
                      markup=False)
    if not all(o.ok for o in outcomes):
        raise DeliveryError("the test did not reach every address")


@click.command()
@click.option("--burst", is_flag=True, help="Deliver what is due now, then exit.")
@site_command
def worker(site: Site, burst: bool) -> None:
    """Deliver queued email; run as many as you like against one database.

    With --burst, exits 75 when messages are left waiting (the server could
    not be reached, retries are pending), saying how many and when they are
    retried; messages another worker holds are named with their lease."""
    _exit_if_left(_deliver_foreground(site, burst=burst))
