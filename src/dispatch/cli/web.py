"""``dispatch serve``: the small web app (feeds now; unsubscribe and web views join it)."""

from __future__ import annotations

import click

from dispatch.cli.base import Site, console, site_command


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@site_command
def serve(site: Site, host: str, port: int) -> None:
    """Serve the feeds (and the other web endpoints) with uvicorn."""
    import uvicorn

    from dispatch.web.app import create_app

    app = create_app(site.settings, site.store)
    console.print(f"serving {site.settings.root} on http://{host}:{port}/  (Ctrl-C to stop)",
                  markup=False)
    uvicorn.run(app, host=host, port=port, log_level="info" if site.verbose else "warning")
