"""``dispatch subscribers``: import, export, add, remove, reactivate, list."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import click
from rich.table import Column, Table

from dispatch.cli.base import Site, console, now, print_problems, site_command
from dispatch.errors import InputError
from dispatch.subscribers import (
    STATUSES,
    InvalidAddress,
    add_subscriber,
    change_status,
    get_subscriber,
    import_csv,
    list_counts,
    list_names,
    normalise_email,
    reactivate_subscribers,
    remove_from_list,
)
from dispatch.subscribers.csvfile import EMPTY_FILE, field_names, write_rows
from dispatch.subscribers.repository import (
    SubscriberStatus,
    count_subscribers,
    is_member,
    iter_subscribers,
    stream_rows,
)
from dispatch.values.address import identity_key


def _address(raw: str) -> str:
    try:
        return normalise_email(raw)
    except InvalidAddress as exc:
        raise InputError(f"{exc} (expected {exc.expected})") from None


@click.group()
def subscribers() -> None:
    """Manage subscribers and lists."""


@subscribers.command("import")
@click.argument("csv_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--list", "list_name", required=True, help="The list to add everyone to.")
@click.option("--skip-invalid", is_flag=True,
              help="Import the valid rows even if some are invalid (they are reported).")
@site_command
def import_(site: Site, csv_file: Path, list_name: str, skip_invalid: bool) -> None:
    """Import a CSV (email, name, custom fields…). All-or-nothing unless --skip-invalid."""
    from dispatch.signup.forget import erased_check
    from dispatch.unsubscribe import secret_key

    report = import_csv(site.store, csv_file, list_name, now(), skip_invalid=skip_invalid,
                        erased=erased_check(site.store, secret_key(site.settings)))
    print_problems(report.problems)
    skipped = [p for p in report.problems if p.message != EMPTY_FILE]
    console.print(
        f"{list_name}: {report.rows} address(es) read, {report.created} new, "
        f"{report.updated} updated, {report.merged} duplicate row(s) merged, "
        f"{report.kept_suppressed} kept unsubscribed/bounced/complained"
        + (f", {len(skipped)} invalid row(s) skipped" if skipped else ""),
        markup=False)


@subscribers.command()
@click.option("--list", "list_name", help="Only this list.")
@click.option("--status", type=click.Choice(STATUSES), help="Only this status.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (atomically) instead of standard output.")
@site_command
def export(site: Site, list_name: str | None, status: str | None, output: Path | None) -> None:
    """Export subscribers as CSV: email, name, status, custom fields.

    Streamed a page at a time, so any size of list exports in little memory.
    A cell starting with = + - @ tab or CR is written with a leading single
    quote, so a spreadsheet shows it as text instead of running it."""
    if list_name is not None and list_name not in list_names(site.store):
        raise InputError(f"no list named {list_name}")
    extra = field_names(site.store, list_name=list_name, status=status)
    rows = stream_rows(site.store, list_name=list_name, status=status)
    if output is None:
        write_rows(sys.stdout, rows, extra)
        sys.stdout.flush()
        return
    tmp = output.with_name(output.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as out:
        n = write_rows(out, rows, extra)
    os.replace(tmp, output)
    console.print(f"wrote {n} subscriber(s) to {output}", markup=False)


@subscribers.command()
@click.argument("email")
@click.option("--list", "list_name", required=True)
@click.option("--name", default="", help="The subscriber's name.")
@site_command
def add(site: Site, email: str, list_name: str, name: str) -> None:
    """Add one address to a list (an unsubscribed address stays unsubscribed)."""
    person, created = add_subscriber(site.store, _address(email), list_name, now(), name=name)
    state = "added" if created else f"already known ({person.status})"
    console.print(f"{person.email}: {state}; member of {list_name}", markup=False)


@subscribers.command()
@click.argument("email")
@click.option("--list", "list_name",
              help="Remove from this list only; without it the address is unsubscribed "
                   "everywhere (kept as a suppression so no import brings it back).")
@site_command
def remove(site: Site, email: str, list_name: str | None) -> None:
    """Remove an address from a list, or unsubscribe it everywhere."""
    address = _address(email)
    person = get_subscriber(site.store, address)
    if person is None:
        raise InputError(f"no subscriber {address}")
    if list_name is not None:
        if not remove_from_list(site.store, address, list_name):
            raise InputError(f"{address} is not on list {list_name}")
        console.print(f"{person.email}: removed from {list_name}", markup=False)
        return
    change_status(site.store, [person.id], "unsubscribed", now(), "removed by operator")
    console.print(f"{person.email}: unsubscribed", markup=False)


@subscribers.command()
@click.argument("emails", nargs=-1, metavar="[EMAIL]...")
@click.option("--list", "list_name",
              help="Only members of this list; without EMAIL, every bounced member of it.")
@click.option("--include-unsubscribed", is_flag=True,
              help="Also re-activate unsubscribed addresses. Only when the person has "
                   "asked to be subscribed again.")
@site_command
def reactivate(site: Site, emails: tuple[str, ...], list_name: str | None,
               include_unsubscribed: bool) -> None:
    """Make bounced addresses active again (e.g. after a relay refusal was taken for a
    bounce). Unsubscribed addresses are refused without --include-unsubscribed;
    a spam complaint is never undone."""
    from dispatch.bounces.history import record_reactivation

    if not emails and list_name is None:
        raise InputError("give the addresses to re-activate, or --list NAME for every "
                         "bounced member of a list")
    if list_name is not None and list_name not in list_names(site.store):
        raise InputError(f"no list named {list_name}")
    # A complaint is never undone here: the reader told their mailbox
    # provider this is spam, and mailing them again hurts every reader's mail.
    allowed: tuple[SubscriberStatus, ...] = (
        ("bounced", "unsubscribed") if include_unsubscribed else ("bounced",))
    chosen: dict[int, str] = {}
    addresses: dict[int, str] = {}
    refused: list[str] = []
    if not emails and list_name is not None:
        # Only the members that could change are read, never the whole list.
        for status in allowed:
            for p in iter_subscribers(site.store, list_name=list_name, status=status):
                chosen[p.id] = p.status
                addresses[p.id] = p.email
    for raw in emails:
        address = _address(raw)
        person = get_subscriber(site.store, address)
        if person is not None and list_name is not None and not is_member(
                site.store, person.id, list_name):
            person = None
        if person is None:
            refused.append(f"{address}: " + (f"not on list {list_name}" if list_name
                                              else "no such subscriber"))
        elif person.status == "active":
            console.print(f"{person.email}: already active", markup=False)
        elif person.status == "complained":
            refused.append(f"{person.email}: complained (marked our mail as spam); a complaint "
                           "is never re-activated")
        elif person.status not in allowed:
            refused.append(f"{person.email}: {person.status}, not re-activated (pass "
                           "--include-unsubscribed only if they asked to be subscribed again)")
        else:
            chosen[person.id] = person.status
            addresses[person.id] = person.email
    at = now()
    changed = reactivate_subscribers(site.store, list(chosen), at, "re-activated by operator",
                                     allowed)
    if changed:
        record_reactivation(site.store, [(sid, addresses[sid], f"re-activated by operator "
                                          f"(was {status})") for sid, status in chosen.items()],
                            at)
    before = ", ".join(f"{n} {status}" for status, n in sorted(Counter(chosen.values()).items()))
    console.print(f"{changed} subscriber(s) active again" + (f" (were {before})" if before
                                                             else ""), markup=False)
    if refused:
        raise InputError("\n".join(refused))


@subscribers.command("list")
@click.option("--list", "list_name", help="Only this list.")
@click.option("--status", type=click.Choice(STATUSES), help="Only this status.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="Show at most this many subscribers.")
@click.option("--after", "after", default="",
              help="Start after this address (the last one shown, for the next page).")
@site_command
def list_(site: Site, list_name: str | None, status: str | None, limit: int,
          after: str) -> None:
    """Show subscribers a page at a time; without options, a summary of every list."""
    if list_name is None and status is None:
        table = Table("list", *STATUSES)
        for name, counts in list_counts(site.store).items():
            table.add_row(name, *(str(counts.get(s, 0)) for s in STATUSES))
        console.print(table)
        return
    if list_name is not None and list_name not in list_names(site.store):
        raise InputError(f"no list named {list_name}")
    start = identity_key(after) if after else ""
    total = count_subscribers(site.store, list_name=list_name, status=status)
    people = []
    for p in iter_subscribers(site.store, list_name=list_name, status=status, after=start,
                              page=min(limit, 2000)):
        people.append(p)
        if len(people) >= limit:
            break
    shown = len(people)
    last = people[-1].email if people else ""
    tz = site.settings.site.tz
    table = Table()
    # The address is what `subscribers remove` needs typed in: never cut it.
    table.add_column("email", no_wrap=True, min_width=max([5] + [len(p.email) for p in people]))
    table.add_column("name")
    table.add_column("status", no_wrap=True, min_width=12)
    table.add_column("since", no_wrap=True, min_width=10)
    table.add_column("reason")
    for p in people:
        since = p.status_since.astimezone(tz).strftime("%Y-%m-%d") if p.status_since else ""
        # An active reader has no reason to show: "—" says so rather than a blank.
        table.add_row(p.email, p.name, p.status, since, p.status_reason or "—")
    console.print(table)
    console.print(f"{total} subscriber(s)" + (
        "" if shown == total else f"; {shown} shown"), markup=False)
    if shown == limit and last:
        more = ["dispatch", "subscribers", "list"]
        if list_name is not None:
            more += ["--list", list_name]
        if status is not None:
            more += ["--status", status]
        console.print(f"next page: {' '.join(more)} --after {last}  (or `dispatch subscribers "
                      "export` for everyone)", markup=False)


@subscribers.command()
@site_command
def merges(site: Site) -> None:
    """Show the subscribers the address-identity upgrade merged (other spellings
    of one address), with the status each merged person ended with."""
    from dispatch.subscribers.merges import merge_records

    records = merge_records(site.store)
    if not records:
        console.print("no subscribers were merged", markup=False)
        return
    table = Table("merged", "was", "into", "now")
    for r in records:
        table.add_row(r.merged_email, r.merged_status, r.kept_email, r.status)
    console.print(table)
    console.print(f"{len(records)} row(s) merged", markup=False)


@subscribers.command()
@click.argument("email")
@site_command
def show(site: Site, email: str) -> None:
    """One address's history: lists and the consent behind each, every message with
    its outcome, and each bounce, complaint and unsubscribe with its evidence."""
    from dispatch.bounces.history import subscriber_history
    from dispatch.signup.consent import consents_of

    address = _address(email)
    person = get_subscriber(site.store, address)
    history = subscriber_history(site.store, person.id) if person is not None else None
    if history is None:
        from dispatch.signup.forget import data_export
        from dispatch.unsubscribe import secret_key

        # An erased address, or one with only signup requests, is not a subscriber.
        data = data_export(site.store, secret_key(site.settings), address)  # or InputError
        state = "erased on request" if data["erased"] else "not a subscriber"
        console.print(f"{address}: {state}; {len(data['signup_requests'])} signup "
                      "request(s) on record", markup=False)
        return
    out = console.print
    out(f"{history.email}" + (f" ({history.name})" if history.name else ""), markup=False)
    out(f"status: {history.status} since {history.status_changed_at:%Y-%m-%d %H:%M} UTC"
        + (f" ({history.status_reason})" if history.status_reason else ""), markup=False)
    out(f"known since: {history.created_at:%Y-%m-%d %H:%M} UTC", markup=False)
    for key, value in sorted(history.fields.items()):
        out(f"{key}: {value}", markup=False)
    lists = Table("list", "member since")
    for name, added in history.lists:
        lists.add_row(name, f"{added:%Y-%m-%d %H:%M}")
    out(lists if history.lists else "lists: none")
    with site.store.read() as conn:
        consents = consents_of(conn, history.subscriber_id)
    out("consent:" if consents else "consent: none recorded", markup=False)
    for consent in consents:
        out(f"  {consent.describe()}", markup=False)
    # Reports that came back about each message (a later bounce, a complaint).
    later: dict[int, list[str]] = {}
    for e in history.events:
        if e.outbox_id is not None:
            later.setdefault(e.outbox_id, []).append(
                e.kind.value + (f" {e.status_code}" if e.status_code else ""))
    messages = Table(Column("edition", overflow="fold"), Column("subject", ratio=1),
                     "outcome", "when", "attempts", Column("detail", overflow="fold"),
                     Column("reports since", overflow="fold"))
    for d in history.deliveries:
        messages.add_row(d.edition_id, d.subject, d.status,
                         f"{d.finished_at:%Y-%m-%d %H:%M}" if d.finished_at else "",
                         str(d.attempts), d.detail or "", "; ".join(later.get(d.outbox_id, [])))
    out(messages if history.deliveries else "messages: none")
    if not history.events:
        out("bounces, complaints, unsubscribes by mail: none", markup=False)
        return
    out("bounces, complaints and other reports:", markup=False)
    for e in history.events:
        out(f"- {e.received_at:%Y-%m-%d %H:%M} {e.kind.value} via {e.source}"
            + (f", status {e.status_code}" if e.status_code else "")
            + (f", edition {e.edition_id}" if e.edition_id else "")
            + f": {e.action}", markup=False)
        if e.diagnostic:
            out(f"    evidence: {e.diagnostic}", markup=False)
        if e.source != "operator":
            out(f"    report: {e.report_id}", markup=False)


@subscribers.command()
@click.argument("email")
@site_command
def data(site: Site, email: str) -> None:
    """Print, as JSON, everything stored about one address (for a data request)."""
    import json

    from dispatch.signup.forget import data_export
    from dispatch.unsubscribe import secret_key

    found = data_export(site.store, secret_key(site.settings), _address(email))
    click.echo(json.dumps(found, indent=2, ensure_ascii=False))


@subscribers.command()
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@site_command
def forget(site: Site, email: str, yes: bool) -> None:
    """Erase everything personal about an address (right to erasure). Only a keyed
    hash stays, so no later import can add it back; a signup confirmed through the
    form can."""
    from dispatch.signup.forget import forget as erase
    from dispatch.unsubscribe import secret_key

    address = _address(email)
    if not yes:
        click.confirm(f"Erase {address} and its history for good?", abort=True)
    deleted = erase(site.store, secret_key(site.settings), address, now())
    console.print(f"{address}: " + ("erased; only a keyed hash is kept so imports refuse it"
                                     if deleted else "was not a subscriber; a keyed hash is "
                                     "kept so imports refuse it"), markup=False)
