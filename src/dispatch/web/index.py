"""``/``: a small index page, so the site's root is not a bare "Not Found".

It names the site and links to what ``dispatch serve`` actually serves: the
feeds that have been built (site-wide, then one per category) and, when the
app serves them, the archive of past editions and the subscribe form. Plain
HTML with the site's language, readable from 375 px, no JavaScript.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from dispatch.config import Settings
from dispatch.feeds.formats import feed_formats
from dispatch.feeds.settings import load_feed_settings
from dispatch.store.engine import Store

OPTIONAL_PAGES = (("/archive/", "Past editions"), ("/subscribe", "Subscribe by email"))
"""Linked only when the app serves that path (other modules add them)."""

FORMAT_LABELS = {"rss": "RSS", "atom": "Atom", "json": "JSON Feed"}

STYLE = (
    ":root{color-scheme:light dark}"
    "body{margin:0 auto;max-width:40rem;padding:1rem;"
    "font:16px/1.6 -apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif}"
    "h1{font:bold 1.6rem/1.25 Georgia,'Times New Roman',serif;overflow-wrap:anywhere}"
    "h2{font-size:1.15rem;margin-top:1.5rem}"
    "ul{padding-left:1.2rem}li{margin:.4rem 0}"
    "a{color:#0b5cad;overflow-wrap:anywhere}"
    "@media (prefers-color-scheme:dark){a{color:#8fc3ff}}"
)


@dataclass(frozen=True, slots=True)
class FeedLink:
    label: str
    folder: str
    """"" for the site-wide feeds, ``category/<slug>`` for a category's."""
    files: tuple[tuple[str, str], ...]
    """(format label, file path below the folder) for each built file."""


def built_feeds(out_dir: Path) -> list[FeedLink]:
    """The feeds present in the output folder: site-wide first, then the
    categories by name (the build's manifest knows their spelling)."""
    formats = [(FORMAT_LABELS.get(f.name, f.name), f.file_name) for f in feed_formats()]
    names: dict[str, str] = {}
    try:
        manifest = json.loads((out_dir / ".dispatch-feeds.json").read_text(encoding="utf-8"))
        for folder, record in manifest.get("feeds", {}).items():
            if isinstance(record, dict) and record.get("names"):
                names[folder] = str(record["names"][0])
    except (OSError, ValueError, AttributeError):
        pass  # no build yet, or an unreadable manifest: folder names will do
    found: list[FeedLink] = []
    folders = [""]
    categories = out_dir / "category"
    if categories.is_dir():
        folders += sorted(f"category/{p.name}" for p in categories.iterdir() if p.is_dir())
    for folder in folders:
        here = out_dir / folder if folder else out_dir
        files = tuple((label, name) for label, name in formats if (here / name).is_file())
        if files:
            label = ("All articles" if not folder
                     else names.get(folder, folder.split("/", 1)[1]))
            found.append(FeedLink(label, folder, files))
    found.sort(key=lambda f: (f.folder != "", f.label.casefold()))
    return found


def render_index(settings: Settings, feeds: list[FeedLink], pages: list[tuple[str, str]]) -> str:
    site = settings.site
    esc = html.escape
    parts = [
        f'<!doctype html>\n<html lang="{esc(site.language)}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{esc(site.title)}</title><style>{STYLE}</style>",
    ]
    for feed in feeds[:1]:
        for label, name in feed.files:
            media = next(f.media_type for f in feed_formats() if f.file_name == name)
            parts.append(f'<link rel="alternate" type="{esc(media)}" title="{esc(label)}" '
                         f'href="/{esc(name)}">')
    parts.append(f"</head><body><main><h1>{esc(site.title)}</h1>")
    if site.description:
        parts.append(f"<p>{esc(site.description)}</p>")
    if pages:
        parts.append("<ul>" + "".join(f'<li><a href="{esc(path)}">{esc(label)}</a></li>'
                                      for path, label in pages) + "</ul>")
    parts.append("<h2>Feeds</h2>")
    if feeds:
        parts.append("<ul>")
        for feed in feeds:
            prefix = f"/{feed.folder}/" if feed.folder else "/"
            links = ", ".join(f'<a href="{esc(prefix + name)}">{esc(label)}</a>'
                              for label, name in feed.files)
            parts.append(f"<li>{esc(feed.label)}: {links}</li>")
        parts.append("</ul>")
    else:
        parts.append("<p>No feeds have been built yet.</p>")
    parts.append(f'<p><a href="{esc(site.url)}/">{esc(site.url)}</a></p></main></body></html>\n')
    return "".join(parts)


def routes(settings: Settings, store: Store) -> list[BaseRoute]:
    out_dir = load_feed_settings(settings).out_dir

    async def index(request: Request) -> Response:
        served = {getattr(r, "path", None) for r in request.app.routes}
        pages = [(path, label) for path, label in OPTIONAL_PAGES if path in served]
        body = render_index(settings, built_feeds(out_dir), pages)
        return HTMLResponse(body, headers={"Cache-Control": "public, max-age=60"})

    return [Route("/", index, methods=["GET"])]
