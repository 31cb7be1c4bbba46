"""``dispatch editions``: every edition with its date, subject, audience and counts."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from dispatch.cli.base import Site, console, site_command


@click.command()
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]),
              help="Only editions queued on or after this date (site time).")
@site_command
def editions(site: Site, since: datetime | None) -> None:
    """Editions, newest first: when, subject, audience, and what became of each message."""
    from dispatch.staff.reports import edition_rows

    tz = site.settings.site.tz
    start = since.replace(tzinfo=tz).astimezone(UTC) if since else None
    rows = edition_rows(site.store, since=start)
    if not rows:
        console.print("no editions" + (f" since {since:%Y-%m-%d}" if since else ""))
        return
    for r in rows:
        s = r.status
        console.print(f"{s.queued_at.astimezone(tz):%Y-%m-%d %H:%M}  {s.edition_id}  [{s.state}]",
                      markup=False)
        console.print(f"    {s.subject!r} to {', '.join(s.audience)}: sent {s.sent}/{s.total}, "
                      f"waiting {s.pending}, failed {s.failed}, bounced {r.bounced}, "
                      f"unsubscribed since {r.unsubscribed}", markup=False)
