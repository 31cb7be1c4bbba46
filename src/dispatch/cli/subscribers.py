"""``dispatch subscribers``: import, export, add, remove, list, lists."""

from __future__ import annotations

import os
from pathlib import Path

import click
from rich.table import Table

from dispatch.cli.base import Site, console, now, print_problems, site_command
from dispatch.errors import InputError
from dispatch.subscribers import (
    STATUSES,
    InvalidAddress,
    add_subscriber,
    change_status,
    export_csv,
    find_subscribers,
    get_subscriber,
    import_csv,
    list_counts,
    list_names,
    normalise_email,
    remove_from_list,
)


def _address(raw: str) -> str:
    try:
        return normalise_email(raw)
    except InvalidAddress as exc:
        raise InputError(str(exc)) from None


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
    report = import_csv(site.store, csv_file, list_name, now(), skip_invalid=skip_invalid)
    print_problems(report.problems)
    console.print(
        f"{list_name}: {report.rows} address(es) read, {report.created} new, "
        f"{report.updated} updated, {report.merged} duplicate row(s) merged, "
        f"{report.kept_suppressed} kept unsubscribed/bounced/complained"
        + (f", {len(report.problems)} invalid row(s) skipped" if report.problems else ""),
        markup=False)


@subscribers.command()
@click.option("--list", "list_name", help="Only this list.")
@click.option("--status", type=click.Choice(STATUSES), help="Only this status.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (atomically) instead of standard output.")
@site_command
def export(site: Site, list_name: str | None, status: str | None, output: Path | None) -> None:
    """Export subscribers as CSV: email, name, status, custom fields."""
    text = export_csv(find_subscribers(site.store, list_name=list_name, status=status))
    if output is None:
        click.echo(text, nl=False)
        return
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, output)
    console.print(f"wrote {output}", markup=False)


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
        console.print(f"{address}: removed from {list_name}", markup=False)
        return
    change_status(site.store, [person.id], "unsubscribed", now(), "removed by operator")
    console.print(f"{address}: unsubscribed", markup=False)


@subscribers.command("list")
@click.option("--list", "list_name", help="Only this list.")
@click.option("--status", type=click.Choice(STATUSES), help="Only this status.")
@site_command
def list_(site: Site, list_name: str | None, status: str | None) -> None:
    """Show subscribers; without options, a summary of every list."""
    if list_name is None and status is None:
        table = Table("list", *STATUSES)
        for name, counts in list_counts(site.store).items():
            table.add_row(name, *(str(counts.get(s, 0)) for s in STATUSES))
        console.print(table)
        return
    if list_name is not None and list_name not in list_names(site.store):
        raise InputError(f"no list named {list_name}")
    people = find_subscribers(site.store, list_name=list_name, status=status)
    table = Table("email", "name", "status", "since reason")
    for p in people:
        table.add_row(p.email, p.name, p.status, p.status_reason or "")
    console.print(table)
    console.print(f"{len(people)} subscriber(s)", markup=False)
