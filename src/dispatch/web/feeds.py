"""Serve the built feed files with the right types and conditional GET.

The files are written only when their bytes change (see
:mod:`dispatch.feeds.build`), so the file's mtime is an honest
``Last-Modified`` and a hash of its bytes a strong ``ETag``. A client that
sends either back gets ``304 Not Modified`` with no body (RFC 9110 §13.1:
``If-None-Match`` wins over ``If-Modified-Since`` when both are present).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from dispatch.config import Settings
from dispatch.feeds.formats import feed_formats
from dispatch.feeds.settings import load_feed_settings
from dispatch.store.engine import Store
from dispatch.web.conditional import none_match

CACHE_CONTROL = "public, max-age=300"
_CATEGORY = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True, slots=True)
class _Cached:
    size: int
    mtime_ns: int
    body: bytes
    etag: str


class FeedFiles:
    """Reads feed files, re-reading one only when its size or mtime changed."""

    def __init__(self, out_dir: Path, base_url: str, hub: str | None) -> None:
        # Read from the registry when the app is made, not when this module
        # is imported: a format registered later is still served.
        self.content_types = {f.file_name: f"{f.media_type}; charset=utf-8"
                              for f in feed_formats()}
        self.out_dir = out_dir
        self.base_url = base_url
        self.hub = hub
        self._cache: dict[Path, _Cached] = {}

    def get(self, relative: str) -> _Cached | None:
        path = self.out_dir / relative
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        cached = self._cache.get(path)
        if cached is None or (cached.size, cached.mtime_ns) != (st.st_size, st.st_mtime_ns):
            body = path.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            cached = self._cache[path] = _Cached(st.st_size, st.st_mtime_ns, body, etag)
        return cached

    async def serve(self, request: Request) -> Response:
        category = request.path_params.get("category")
        name = request.path_params.get("name") or request.url.path.rsplit("/", 1)[-1]
        bad_category = category is not None and not _CATEGORY.match(category)
        if name not in self.content_types or bad_category:
            return PlainTextResponse("not found", status_code=404)
        relative = f"category/{category}/{name}" if category else name
        found = self.get(relative)
        if found is None:
            return PlainTextResponse("feed not built yet: run `dispatch build`", status_code=404)
        modified = datetime.fromtimestamp(found.mtime_ns // 1_000_000_000, UTC)
        headers = {
            "ETag": found.etag,
            "Last-Modified": format_datetime(modified, usegmt=True),
            "Cache-Control": CACHE_CONTROL,
        }
        # WebSub discovery by HTTP header as well as in the document. The self
        # link is the public URL (the topic), not whatever host we were reached on.
        links = [f'<{self.base_url}/{relative}>; rel="self"']
        if self.hub:
            links.insert(0, f'<{self.hub}>; rel="hub"')
        headers["Link"] = ", ".join(links)
        if _not_modified(request, found.etag, modified):
            return Response(status_code=304, headers=headers)
        body = b"" if request.method == "HEAD" else found.body
        response = Response(body, headers=headers, media_type=self.content_types[name])
        if request.method == "HEAD":
            response.headers["Content-Length"] = str(found.size)
        return response


def _not_modified(request: Request, etag: str, modified: datetime) -> bool:
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        return none_match(if_none_match, etag)
    since = request.headers.get("if-modified-since")
    if since is None:
        return False
    try:
        when = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False  # an unparseable date is ignored, as RFC 9110 says
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return modified <= when


def routes(settings: Settings, store: Store) -> list[BaseRoute]:
    config = load_feed_settings(settings)
    files = FeedFiles(config.out_dir, config.base_url, config.hub)
    methods = ["GET", "HEAD"]
    found: list[BaseRoute] = [Route(f"/{name}", files.serve, methods=methods)
                              for name in files.content_types]
    found.append(Route("/category/{category}/{name}", files.serve, methods=methods))
    return found
