"""``dispatch preview``: render emails for a sample recipient, and show them."""

from __future__ import annotations

import contextlib
import functools
import html
from datetime import date, datetime, time, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import click

from dispatch.cli.base import Site, console, missing_article, now, print_problems, site_command
from dispatch.config import Settings
from dispatch.errors import InputError
from dispatch.models import Article
from dispatch.pipeline import load_for_check
from dispatch.render import (
    Edition,
    MessageFactory,
    Recipient,
    render_article_edition,
    render_digest_edition,
)
from dispatch.render.mime import check_recipient
from dispatch.render.settings import load_email_settings, size_problems


def sample_recipient(settings: Settings) -> Recipient:
    base = settings.site.url
    return Recipient(email="sample.reader@example.org", name="Sam Sample",
                     unsubscribe_url=f"{base}/unsubscribe/preview-token",
                     webview_url=f"{base}/email/preview/",
                     preferences_url=f"{base}/preferences/preview-token",
                     # As delivery adds it, so the preview's headers are the real ones.
                     unsubscribe_mailto=load_email_settings(settings).mailto_for(
                         "preview-token"))


def personalise(edition: Edition, recipient: Recipient, fallback: str,
                first_fallback: str = "there") -> tuple[str, str]:
    """The edition's HTML and text with the recipient filled in, for viewing as files."""
    from dispatch.render.edition import PLACEHOLDERS, recipient_values

    check_recipient(recipient)
    values = recipient_values(recipient, fallback, first_fallback)
    html_out, text_out = edition.html, edition.text
    for key, token in PLACEHOLDERS.items():
        html_out = html_out.replace(token, html.escape(values[key], quote=False))
        text_out = text_out.replace(token, values[key])
    return html_out, text_out


def write_preview(settings: Settings, edition: Edition, name: str, out: Path,
                  current: datetime) -> list[Path]:
    recipient = sample_recipient(settings)
    es = load_email_settings(settings)
    html_text, plain = personalise(edition, recipient, es.name_fallback, es.first_name_fallback)
    eml = MessageFactory(edition, settings).build(recipient, date=current)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.html", out / f"{name}.txt", out / f"{name}.eml"]
    paths[0].write_text(html_text, encoding="utf-8")
    paths[1].write_text(plain, encoding="utf-8")
    paths[2].write_bytes(eml)
    _write_index(out)
    return paths


def _write_index(out: Path) -> None:
    rows = "\n".join(
        f'<li><a href="{html.escape(p.name)}">{html.escape(p.stem)}</a> '
        f'(<a href="{html.escape(p.stem)}.txt">text</a>, '
        f'<a href="{html.escape(p.stem)}.eml">.eml</a>)</li>'
        for p in sorted(out.glob("*.html")) if p.name != "index.html")
    (out / "index.html").write_text(
        f"<!DOCTYPE html><meta charset=utf-8><title>dispatch previews</title>"
        f"<h1>Email previews</h1><ul>{rows}</ul>\n", encoding="utf-8")


def _since(value: str | None, settings: Settings, current: datetime) -> datetime:
    if value is None:
        return current - timedelta(days=7)
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise InputError(f"--since {value!r} is not a date (expected YYYY-MM-DD)") from None
    return datetime.combine(day, time(0, 0), tzinfo=settings.site.tz)


def _published(settings: Settings, current: datetime) -> list[Article]:
    result = load_for_check(settings)
    print_problems(result.errors)
    return [a for a in result.articles if a.is_published(current)]


def preview_server(out: Path, port: int) -> ThreadingHTTPServer:
    """An HTTP server for the preview folder, bound to 127.0.0.1 only."""
    out.mkdir(parents=True, exist_ok=True)
    _write_index(out)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(out))
    try:
        return ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        raise InputError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror} (another "
                         "program may be using the port; try --port)") from None


def _serve(out: Path, port: int) -> None:
    with preview_server(out, port) as server:
        console.print(f"serving previews at http://127.0.0.1:{server.server_address[1]}/ "
                      "(Ctrl-C to stop)", markup=False)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


@click.command()
@click.argument("slug", required=False)
@click.option("--digest", is_flag=True, help="Preview a digest of recent articles.")
@click.option("--since", metavar="DATE", help="Digest: articles published since DATE "
              "(YYYY-MM-DD, site time zone); default the last 7 days.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default .dispatch/preview/).")
@click.option("--serve", is_flag=True, help="Serve the previews on 127.0.0.1.")
@click.option("--port", type=click.IntRange(0, 65535), default=8025, show_default=True)
@site_command
def preview(site: Site, slug: str | None, digest: bool, since: str | None, out: Path | None,
            serve: bool, port: int) -> None:
    """Render the email for SLUG (or --digest) for a sample recipient."""
    settings = site.settings
    folder = out if out is not None else settings.state_dir / "preview"
    current = now()
    if slug and digest:
        raise InputError("give either SLUG or --digest, not both")
    if slug:
        loaded = load_for_check(settings)
        found = loaded.by_slug
        if slug not in found:
            raise missing_article(loaded, slug)
        edition = render_article_edition(settings, found[slug], f"preview-{slug}")
        paths = write_preview(settings, edition, slug, folder, current)
    elif digest:
        start = _since(since, settings, current)
        chosen = [a for a in _published(settings, current) if a.date >= start]
        if not chosen:
            raise InputError(f"no articles published since {start:%Y-%m-%d %H:%M %Z}; "
                             "try --since with an earlier date")
        chosen.sort(key=lambda a: a.date, reverse=True)
        edition = render_digest_edition(settings, chosen, "preview-digest")
        paths = write_preview(settings, edition, "digest", folder, current)
    elif not serve:
        raise InputError("give a SLUG, --digest or --serve")
    else:
        paths = []
    for path in paths:
        console.print(str(path), markup=False)
    if paths:
        print_problems(size_problems(paths[0].name, edition.html_size,
                                     load_email_settings(settings).allow_clip))
    if serve:
        _serve(folder, port)
