"""``dispatch bounces process [--dry-run]``: read the bounce mailbox once."""

from __future__ import annotations

import click

from dispatch.cli.base import Site, console, now, site_command


@click.group()
def bounces() -> None:
    """Bounces, complaints and mailto unsubscribes."""


@bounces.command()
@click.option("--dry-run", is_flag=True,
              help="Classify and decide, but change no subscriber and move no message.")
@click.option("--rescan", is_flag=True,
              help="Read again the messages an earlier run read and did not recognise.")
@site_command
def process(site: Site, dry_run: bool, rescan: bool) -> None:
    """Read DISPATCH_BOUNCE_MAILBOX: DSNs, ARF complaints, mailto unsubscribes.

    Recognised messages are moved to the processed folder (POP3: remembered,
    never deleted); anything else is left untouched."""
    from dispatch.bounces.process import process_mailbox
    from dispatch.unsubscribe import secret_key

    report = process_mailbox(site.settings, site.store, secret_key(site.settings), now(),
                             dry_run=dry_run, rescan=rescan)
    for d in report.decisions:
        who = d.target.email if d.target else (d.finding.recipient or "(nobody we know)")
        code = d.finding.status_code or "-"
        console.print(f"{d.finding.kind.value:<11} {who}  {code}  {d.action}  "
                      f"[{d.format} {d.report_id}]", markup=False)
        if d.finding.diagnostic and site.verbose:
            console.print(f"            {d.finding.diagnostic}", markup=False)
    console.print(("dry run: " if dry_run else "") + report.summary(), markup=False)
