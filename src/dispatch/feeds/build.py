"""Plan, render and write every feed; touch only files whose bytes change.

Two things keep a rebuild cheap and a poller's view stable:

* **Atomic, change-only writes.** A file is replaced (temp file in the same
  folder, fsync, rename) only when its new bytes differ, so a reader never
  sees half a feed, and mtime-based ``Last-Modified``/``ETag`` values stay put
  when nothing changed.
* **A manifest of inputs.** ``.dispatch-feeds.json`` in the output folder keeps,
  per feed, a digest of what that feed is rendered from (its articles'
  source digests, the settings, and a digest of the renderer code, see
  :meth:`~dispatch.feeds.model.FeedPlan.digest`) and the size and mtime of
  each file written. A feed whose digest matches and whose
  files are untouched is not rendered at all; that is what makes a
  one-article rebuild of a 10,000-article site fast. Deleting the manifest
  only costs one full render.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from dispatch.config import Settings
from dispatch.feeds import jsonfeed, model, rss_atom
from dispatch.feeds.jsonfeed import render_json
from dispatch.feeds.model import (
    FILE_NAMES,
    FORMATS,
    Entry,
    Feed,
    digest_context,
    make_feed,
    plan_feeds,
)
from dispatch.feeds.report import FeedBuildReport
from dispatch.feeds.rss_atom import render_atom, render_rss
from dispatch.feeds.settings import load_feed_settings
from dispatch.models import Article

MANIFEST = ".dispatch-feeds.json"
_FEED_PATH = re.compile(r"^(category/[a-z0-9][a-z0-9-]*)?$")
RENDERERS: dict[str, Callable[[Feed], bytes]] = {
    "rss": render_rss, "atom": render_atom, "json": render_json,
}


def write_atomically(path: Path, data: bytes, durable: bool = True) -> bool:
    """Replace ``path`` with ``data`` unless it already holds exactly that.

    Returns whether the file was written.
    """
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    _replace(path, data, durable)
    return True


def _replace(path: Path, data: bytes, durable: bool) -> None:
    """Put ``data`` at ``path`` through a temp file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        # mkstemp creates 0600; a web server reading the folder needs 0644.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@functools.cache
def _render_key() -> str:
    """Which code renders the feeds: feedgen's version and a digest of our own
    renderer modules, so an upgrade that changes the output invalidates every
    manifest by itself instead of relying on someone bumping a number."""
    h = hashlib.sha1(usedforsecurity=False)
    for module in (model, rss_atom, jsonfeed):
        h.update(Path(module.__file__ or "").read_bytes())
    return f"feedgen {version('feedgen')}|{h.hexdigest()[:16]}"


def _read_manifest(out: Path) -> tuple[dict[str, Any], bytes | None]:
    """The feeds recorded in the manifest, and its bytes (``None`` if unreadable)
    so that an unchanged manifest is neither re-read nor rewritten."""
    try:
        raw = (out / MANIFEST).read_bytes()
    except OSError:
        return {}, None
    try:
        data = json.loads(raw)
    except ValueError:
        return {}, raw
    if not isinstance(data, dict) or data.get("renderer") != _render_key():
        return {}, raw
    feeds = data.get("feeds")
    return (feeds if isinstance(feeds, dict) else {}), raw


def _stamp(path: str) -> list[int] | None:
    # Plain os.stat on a string: this runs for every file on every build.
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _intact(out: str, record: dict[str, Any]) -> bool:
    files = record.get("files")
    if not isinstance(files, dict) or len(files) != len(FORMATS):
        return False
    # One stat per file of every unchanged feed on every build: kept to the
    # bare comparison (a missing file simply fails it).
    try:
        for name, stamp in files.items():
            st = os.stat(f"{out}/{name}")
            if [st.st_size, st.st_mtime_ns] != stamp:
                return False
    except OSError:
        return False
    return True


def build_feeds(settings: Settings, articles: Sequence[Article], now: datetime,
                out_dir: Path | None = None) -> FeedBuildReport:
    """Write the site-wide and per-category feeds for what is published at ``now``.

    ``articles`` may include drafts and future articles; they are left out.
    Raises :class:`~dispatch.errors.ConfigError` for a bad ``[feeds]`` table.
    """
    if now.tzinfo is None:
        raise ValueError("build_feeds needs an aware 'now'")
    config = load_feed_settings(settings)
    out = out_dir if out_dir is not None else config.out_dir
    previous, previous_bytes = _read_manifest(out)
    current: dict[str, Any] = {}
    written: list[Path] = []
    unchanged = rendered = 0
    planned = plan_feeds(settings, config, articles, now)
    entries: dict[str, Entry] = {}
    context = digest_context(settings, config) + "|" + _render_key()
    out_str = str(out)
    for plan in planned:
        digest = plan.digest(context)
        record = previous.get(plan.path)
        if (isinstance(record, dict) and record.get("digest") == digest
                and _intact(out_str, record)):
            current[plan.path] = record
            unchanged += len(FORMATS)
            continue
        rendered += 1
        feed = make_feed(plan, settings, config, entries)
        files: dict[str, list[int] | None] = {}
        for fmt in FORMATS:
            path = out / feed.file(fmt)
            if write_atomically(path, RENDERERS[fmt](feed)):
                written.append(path)
            else:
                unchanged += 1
            files[feed.file(fmt)] = _stamp(str(path))
        current[feed.path] = {"digest": digest, "files": files}

    removed = _remove_stale(out, previous, current)
    manifest = {"renderer": _render_key(), "feeds": current}
    data = (json.dumps(manifest, sort_keys=True) + "\n").encode()
    if (planned or previous) and data != previous_bytes:
        # The manifest is only a cache: no fsync (a lost one costs one full render).
        _replace(out / MANIFEST, data, durable=False)
    return FeedBuildReport(out, tuple(written), unchanged, removed, len(planned), rendered)


def _remove_stale(out: Path, previous: dict[str, Any], current: dict[str, Any]) -> tuple[Path, ...]:
    """Delete the files of feeds we wrote before and no longer plan (only
    those: the output folder may hold other people's files)."""
    removed: list[Path] = []
    for feed_path in sorted(previous):
        # Trust the manifest only for names we would write ourselves: a
        # hand-edited manifest must not be able to delete anything else.
        if feed_path in current or not _FEED_PATH.match(feed_path):
            continue
        for fmt in FORMATS:
            name = f"{feed_path}/{FILE_NAMES[fmt]}" if feed_path else FILE_NAMES[fmt]
            path = out / name
            if path.is_file():
                path.unlink()
                removed.append(path)
        folder = out / feed_path
        if feed_path and folder.is_dir():
            with contextlib.suppress(OSError):  # not empty: someone else's files
                folder.rmdir()
    return tuple(removed)
