"""Plan, render and write every feed; touch only files whose bytes change.

Three things keep a rebuild cheap and a poller's view stable:

* **Atomic, change-only writes.** A file is replaced (temp file in the same
  folder, fsync, rename) only when its new bytes differ, so a reader never
  sees half a feed, and mtime-based ``Last-Modified``/``ETag`` values stay put
  when nothing changed.
* **A manifest of inputs.** ``.dispatch-feeds.json`` in the output folder keeps,
  per feed, a digest of what that feed is rendered from (its articles'
  source digests, the settings, and a digest of the renderer code, see
  :meth:`~dispatch.feeds.model.FeedPlan.digest`), its entries, and the size
  and mtime of each file written. In :func:`build_feeds`, a feed whose digest
  matches and whose files are untouched is not rendered at all. Deleting the
  manifest only costs one full render.
* **Updates that skip planning.** :func:`update_feeds`, told which articles
  changed since the last build, re-plans from the manifest only the feeds
  those can touch (:mod:`dispatch.feeds.incremental`), so a one-article
  change on a 10,000-article site reads neither every article nor every file.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson

from dispatch.config import Settings
from dispatch.feeds import model
from dispatch.feeds.formats import feed_format, file_name, format_names, renderer_modules
from dispatch.feeds.incremental import ChangedSince, plan_update, source_key
from dispatch.feeds.model import (
    Entry,
    FeedPlan,
    digest_context,
    make_feed,
    plan_feeds,
)
from dispatch.feeds.report import FeedBuildReport
from dispatch.feeds.settings import FeedSettings, load_feed_settings
from dispatch.models import Article

MANIFEST = ".dispatch-feeds.json"
_FEED_PATH = re.compile(r"^(category/[a-z0-9][a-z0-9-]*)?$")


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
    for module in (model, *map(importlib.import_module, renderer_modules())):
        h.update(Path(module.__file__ or "").read_bytes())
    return f"feedgen {version('feedgen')}|{h.hexdigest()[:16]}"


def _read_manifest(out: Path) -> tuple[dict[str, Any], bytes | None]:
    """The last build's manifest (empty if missing, unreadable or written by
    other renderer code), and its bytes (``None`` if unreadable) so that an
    unchanged manifest is not rewritten."""
    try:
        raw = (out / MANIFEST).read_bytes()
    except OSError:
        return {}, None
    try:
        data = orjson.loads(raw)
    except ValueError:  # orjson.JSONDecodeError is one
        return {}, raw
    if (not isinstance(data, dict) or data.get("renderer") != _render_key()
            or not isinstance(data.get("feeds"), dict)):
        return {}, raw
    return data, raw


def _stamp(path: str) -> list[int] | None:
    # Plain os.stat on a string: this runs for every file on every build.
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _intact(out: str, record: dict[str, Any]) -> bool:
    files = record.get("files")
    if not isinstance(files, dict) or len(files) != len(format_names()):
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


def _context_id(settings: Settings, config: FeedSettings) -> str:
    """What every feed's bytes depend on besides its articles, as a digest."""
    text = digest_context(settings, config) + "|" + _render_key()
    return hashlib.sha1(text.encode("utf-8", "surrogatepass"), usedforsecurity=False).hexdigest()


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
    manifest, previous_bytes = _read_manifest(out)
    previous: dict[str, Any] = manifest.get("feeds", {})
    current: dict[str, Any] = {}
    writer = _Writer(settings, config, out)
    planned = plan_feeds(settings, config, articles, now)
    context = _context_id(settings, config)
    out_str = str(out)
    for plan in planned.feeds:
        digest = plan.digest(context)
        record = previous.get(plan.path)
        if (isinstance(record, dict) and record.get("digest") == digest
                and _intact(out_str, record)):
            current[plan.path] = {**record, "entries": [a.slug for a in plan.articles],
                                  "names": list(plan.names)}
            writer.unchanged += len(format_names())
            continue
        current[plan.path] = writer.write(plan, digest)

    removed = _remove_stale(out, previous, current)
    sources = {a.slug: source_key(a) for plan in planned.feeds for a in plan.articles}
    if planned.feeds or previous:
        _save_manifest(out, context, now, planned.next_due, current, sources, previous_bytes)
    return writer.report(removed, len(planned.feeds))


def update_feeds(settings: Settings, articles: Sequence[Article],
                 by_slug: Mapping[str, Article], changed_since: ChangedSince,
                 now: datetime, out_dir: Path | None = None) -> FeedBuildReport:
    """What :func:`build_feeds` would write, found without reading every article.

    ``by_slug`` maps every article of ``articles`` by slug (the loader's
    :attr:`~dispatch.content.loader.LoadResult.by_slug`); ``changed_since``
    names the articles published or edited at or after a given time (the
    pipeline asks the store). The manifest of the last build says which feeds
    those can touch (see :mod:`dispatch.feeds.incremental`); only those are
    rendered. When the manifest cannot tell, this is a full build.
    """
    if now.tzinfo is None:
        raise ValueError("update_feeds needs an aware 'now'")
    config = load_feed_settings(settings)
    out = out_dir if out_dir is not None else config.out_dir
    manifest, previous_bytes = _read_manifest(out)
    context = _context_id(settings, config)
    # A feed file deleted or overwritten by hand is rewritten by the full
    # build (one stat per file: about 0.2 ms for 153 files).
    out_str = str(out)
    intact = all(isinstance(record, dict) and _intact(out_str, record)
                 for record in manifest.get("feeds", {}).values())
    update = (plan_update(manifest, context, config.entries, settings, by_slug, changed_since,
                          now) if intact else None)
    if update is None:
        return build_feeds(settings, articles, now, out)
    feeds: dict[str, Any] = dict(manifest["feeds"])
    sources: dict[str, str] = dict(manifest["sources"])
    writer = _Writer(settings, config, out)
    for plan in update.plans:
        dropped = set(feeds[plan.path]["entries"]).difference(a.slug for a in plan.articles)
        feeds[plan.path] = writer.write(plan, plan.digest(context))
        sources.update((a.slug, source_key(a)) for a in plan.articles)
        for slug in dropped:
            if not any(slug in record["entries"] for record in feeds.values()):
                del sources[slug]
    writer.unchanged += len(format_names()) * (len(feeds) - len(update.plans))
    # Entries were last checked as published at built_for: it only moves on
    # when a feed was re-planned.
    built_for = now if update.plans else datetime.fromisoformat(manifest["built_for"])
    _save_manifest(out, context, built_for, update.next_due, feeds, sources, previous_bytes)
    return writer.report((), len(feeds))


class _Writer:
    """Renders feeds and writes their files, counting what it did."""

    def __init__(self, settings: Settings, config: FeedSettings, out: Path) -> None:
        self.settings, self.config, self.out = settings, config, out
        self.entries: dict[str, Entry] = {}  # shared between the feeds of one build
        self.written: list[Path] = []
        self.unchanged = 0
        self.rendered = 0

    def write(self, plan: FeedPlan, digest: str) -> dict[str, Any]:
        """Render and write one feed; its manifest record."""
        self.rendered += 1
        feed = make_feed(plan, self.settings, self.config, self.entries)
        files: dict[str, list[int] | None] = {}
        for fmt in format_names():
            path = self.out / feed.file(fmt)
            if write_atomically(path, feed_format(fmt).render(feed)):
                self.written.append(path)
            else:
                self.unchanged += 1
            files[feed.file(fmt)] = _stamp(str(path))
        return {"digest": digest, "files": files, "entries": [a.slug for a in plan.articles],
                "names": list(plan.names)}

    def report(self, removed: tuple[Path, ...], feeds: int) -> FeedBuildReport:
        return FeedBuildReport(self.out, tuple(self.written), self.unchanged, removed, feeds,
                               self.rendered)


def _save_manifest(out: Path, context: str, built_for: datetime, next_due: datetime | None,
                   feeds: dict[str, Any], sources: dict[str, str],
                   previous_bytes: bytes | None) -> None:
    manifest = {
        "renderer": _render_key(),
        "context": context,
        "built_for": built_for.isoformat(),
        "next_due": None if next_due is None else next_due.isoformat(),
        "feeds": feeds,
        "sources": sources,
    }
    # orjson: the manifest is read and written on every pass of a large site,
    # and the standard json module takes ten times as long over it.
    data = orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)
    if data != previous_bytes:
        # The manifest is only a cache: no fsync (a lost one costs one full render).
        _replace(out / MANIFEST, data, durable=False)


def _remove_stale(out: Path, previous: dict[str, Any], current: dict[str, Any]) -> tuple[Path, ...]:
    """Delete the files of feeds we wrote before and no longer plan (only
    those: the output folder may hold other people's files)."""
    removed: list[Path] = []
    for feed_path in sorted(previous):
        # Trust the manifest only for names we would write ourselves: a
        # hand-edited manifest must not be able to delete anything else.
        if feed_path in current or not _FEED_PATH.match(feed_path):
            continue
        for fmt in format_names():
            name = f"{feed_path}/{file_name(fmt)}" if feed_path else file_name(fmt)
            path = out / name
            if path.is_file():
                path.unlink()
                removed.append(path)
        folder = out / feed_path
        if feed_path and folder.is_dir():
            with contextlib.suppress(OSError):  # not empty: someone else's files
                folder.rmdir()
    return tuple(removed)
