"""``dispatch staff``: accounts for the admin pages, and their audit log."""

from __future__ import annotations

import sys
from datetime import datetime

import click

from dispatch.cli.base import Site, console, now, site_command
from dispatch.errors import InputError


@click.group()
def staff() -> None:
    """Staff accounts for the admin pages (`dispatch serve`, /admin/)."""


@staff.command("add")
@click.argument("email")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of standard input "
                   "(for scripts) instead of asking twice.")
@site_command
def add(site: Site, email: str, password_stdin: bool) -> None:
    """Create a staff account, or set a new password for it (ends its sessions)."""
    from dispatch.staff import add_staff

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True,
                                err=True)
    created = add_staff(site.store, email, password, now())
    console.print(f"{'added' if created else 'new password for'} {email.strip()}",
                  markup=False)


@staff.command("remove")
@click.argument("email")
@site_command
def remove(site: Site, email: str) -> None:
    """Remove a staff account and end its sessions."""
    from dispatch.staff import remove_staff

    if not remove_staff(site.store, email, now()):
        raise InputError(f"no staff account {email.strip()!r} (see `dispatch staff list`)")
    console.print(f"removed {email.strip()}", markup=False)


@staff.command("list")
@site_command
def list_accounts(site: Site) -> None:
    """The staff accounts."""
    from dispatch.staff import list_staff

    accounts = list_staff(site.store)
    for address, created in accounts:
        console.print(f"{address}  (since {created:%Y-%m-%d})", markup=False)
    if not accounts:
        console.print("no staff accounts (add one with `dispatch staff add EMAIL`)")


@staff.command("log")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]),
              help="Only entries on or after this date (UTC).")
@site_command
def log(site: Site, since: datetime | None) -> None:
    """The audit log: logins, failed logins and every staff action."""
    from datetime import UTC

    from dispatch.staff import audit_entries

    entries = audit_entries(site.store, since.replace(tzinfo=UTC) if since else None)
    for e in entries:
        line = f"{e.at:%Y-%m-%d %H:%M:%S}  {e.actor}  {e.action}"
        line += (f"  {e.target}" if e.target else "") + (f"  ({e.detail})" if e.detail else "")
        console.print(line, markup=False)
    if not entries:
        console.print("the audit log is empty")
