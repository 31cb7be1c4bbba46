"""``dispatch serve``: the small web app (feeds, one-click unsubscribe, web views,
provider bounce and complaint webhooks)."""

from __future__ import annotations

import click

from dispatch.cli.base import Site, console, err_console, site_command
from dispatch.errors import InputError


def _check_can_listen(host: str, port: int) -> None:
    """Say plainly when the address is taken or unknown, before claiming to serve."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise InputError(f"--host {host!r}: not an address of this machine ({exc})") from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise InputError(f"cannot listen on {host}:{port}: {exc.strerror} "
                             "(another program may be using the port; try --port)") from None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@site_command
def serve(site: Site, host: str, port: int) -> None:
    """Serve the feeds, one-click unsubscribe, web views and bounce webhooks with uvicorn.

    On PostgreSQL it refuses to start without DISPATCH_SECRET_KEY."""
    import uvicorn

    from dispatch.unsubscribe import require_secret_key, secret_key_note
    from dispatch.web.app import create_app

    require_secret_key(site.store)  # on PostgreSQL: a shared key, never a per-machine one
    note = secret_key_note(site.settings)
    if note:
        err_console.print(f"note: {note}", markup=False)
    _check_can_listen(host, port)
    app = create_app(site.settings, site.store)
    console.print(f"serving {site.settings.root} on http://{host}:{port}/  (Ctrl-C to stop)",
                  markup=False)
    uvicorn.run(app, host=host, port=port, log_level="info" if site.verbose else "warning")
