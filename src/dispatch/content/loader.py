"""Load every article of a site, report every problem, lose none of the rest.

Modelled on Pelican's readers: each file is read on its own, a broken one is
reported and skipped, and the batch goes on.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from dispatch.config import Settings
from dispatch.content.cache import CACHE_FORMAT, ArticleCache, CacheEntry
from dispatch.errors import Problem, Severity
from dispatch.models import Article

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

MAX_FILE_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class LoadResult:
    articles: tuple[Article, ...]
    """Valid articles, oldest first (ties by slug) — drafts and future ones included."""
    problems: tuple[Problem, ...]
    files: int
    from_cache: int = 0
    by_slug: dict[str, Article] = field(default_factory=dict, repr=False, compare=False)

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.is_error)

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if not p.is_error)

    def errors_for_slug(self, slug: str) -> tuple[Problem, ...]:
        """The errors of files that would have had ``slug``, to say why a
        command given that slug cannot find it (the file has errors)."""
        from dispatch.content.article import slug_from_path

        return tuple(p for p in self.errors
                     if slug_from_path(p.path) == slug or f"duplicate slug {slug!r}" in p.message)


@dataclass(frozen=True, slots=True)
class _File:
    path: str
    source: str
    size: int
    mtime_ns: int


def _walk(directory: str) -> Iterator[os.DirEntry[str]]:
    # Plain strings, not Path objects: a warm pass over 10,000 files is
    # mostly this walk, and pathlib's parsing cost dominated it.
    with os.scandir(directory) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from _walk(entry.path)
            elif entry.name.endswith(".md") or entry.is_symlink():
                # Symlinks are yielded whatever their name so that a linked
                # folder (never followed: it could loop) gets reported.
                yield entry


def discover(settings: Settings) -> tuple[list[_File], list[Problem]]:
    content = settings.content_dir
    problems: list[Problem] = []
    files: list[_File] = []
    if not content.is_dir():
        problems.append(Problem(_rel(content, settings), "content folder not found", None, None,
                                "a folder of Markdown articles"))
        return files, problems
    real_content = content.resolve()
    prefix = str(settings.root) + os.sep
    for entry in _walk(str(content)):
        source = (entry.path[len(prefix):] if entry.path.startswith(prefix) else entry.path)
        if os.sep != "/":
            source = source.replace(os.sep, "/")
        try:
            if entry.is_symlink():
                target = Path(entry.path).resolve(strict=False)
                if target.is_dir():
                    problems.append(Problem(
                        source, "symlinked folder is not followed", None, None,
                        "the folder itself inside content/, or links to single files",
                        Severity.WARNING))
                    continue
                if not entry.name.endswith(".md"):
                    continue
                if not target.is_relative_to(real_content):
                    problems.append(Problem(source, f"symlink points outside content/ ({target}); "
                                            "refused", None, None, "a file inside content/"))
                    continue
                if not target.is_file():
                    problems.append(Problem(source, "symlink points at nothing", None))
                    continue
            stat = entry.stat()
            if not S_ISREG(stat.st_mode):
                # A named pipe or device would block the read for ever.
                problems.append(Problem(source, "not a regular file; skipped", None, None,
                                        "a Markdown file"))
                continue
        except RuntimeError:  # Path.resolve on a symlink loop (Python 3.11-3.12)
            problems.append(Problem(source, "symlink loop; refused", None, None,
                                    "a symlink that ends at a file"))
            continue
        except OSError as exc:  # removed while we looked, a loop (ELOOP), no permission
            problems.append(Problem(source, f"cannot read: {exc.strerror or exc}", None))
            continue
        if stat.st_size > MAX_FILE_BYTES:
            problems.append(Problem(source, f"file is {stat.st_size:,} bytes; refused",
                                    None, None, f"at most {MAX_FILE_BYTES:,} bytes (2 MB)"))
            continue
        files.append(_File(entry.path, source, stat.st_size, stat.st_mtime_ns))
    return files, problems


def _rel(path: Path, settings: Settings) -> str:
    try:
        return path.relative_to(settings.root).as_posix()
    except ValueError:
        return path.as_posix()


def _decode_and_build(file: _File, data: bytes, digest: str, site_url: str,
                      tz: ZoneInfo) -> tuple[Article | None, list[Problem]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # utf-8-sig counts from after a byte-order mark; the file counts from 0.
        at = exc.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        line = data.count(b"\n", 0, at) + 1
        return None, [Problem(file.source, f"not UTF-8: byte 0x{data[at]:02x} at byte "
                              f"offset {at}", line, None, "a UTF-8 text file")]
    # Imported on the first file that misses the cache: a warm pass (and
    # `dispatch articles`) never loads markdown-it, nh3 or YAML at all.
    from dispatch.content.article import build_article

    return build_article(text, file.source, digest, site_url, tz)


FLUSH_EVERY = 500
"""Parsed articles saved to the cache at a time, so a cold load of a big site
never holds more than this many bodies."""

POOL_FROM = 200
"""Files to parse from which a load parses them in a process pool, one
worker per core: below it, starting the workers costs more than it saves."""


@dataclass(frozen=True, slots=True)
class _Parsed:
    """What reading and parsing one file gave (in a worker or in this process)."""

    file: _File
    digest: str
    article: Article | None
    problems: tuple[Problem, ...]
    unchanged: bool = False
    """Same bytes as the cache entry (only touched): nothing was parsed."""


_worker_site: tuple[str, ZoneInfo] | None = None


def _init_worker(site_url: str, tz: ZoneInfo) -> None:
    global _worker_site
    _worker_site = (site_url, tz)


def _read_and_parse(file: _File, cached_sha: str | None) -> _Parsed:
    assert _worker_site is not None
    try:
        data = Path(file.path).read_bytes()
    except OSError as exc:
        return _Parsed(file, "", None, (Problem(file.source, f"cannot be read: {exc.strerror}"),))
    digest = hashlib.sha256(data).hexdigest()
    if digest == cached_sha:
        return _Parsed(file, digest, None, (), unchanged=True)
    article, found = _decode_and_build(file, data, digest, *_worker_site)
    return _Parsed(file, digest, article, tuple(found))


def _parse_all(jobs: list[tuple[_File, str | None]], settings: Settings) -> Iterator[_Parsed]:
    """Read and parse every job, in order; across all cores when there are many."""
    if len(jobs) < POOL_FROM or _cores() < 2:
        _init_worker(settings.site.url, settings.site.tz)
        for file, sha in jobs:
            yield _read_and_parse(file, sha)
        return
    import multiprocessing  # here: a warm pass has no use for them
    import threading
    from concurrent.futures import ProcessPoolExecutor

    # fork when this process has one thread: the workers start at once with
    # the parser already imported, and (direct children) their CPU shows in
    # this process's own accounting. Forking a threaded process (the web
    # server, a scheduler) could copy a lock some thread holds, so then a
    # fork server does it. Never spawn: it would run an unguarded calling
    # script's top level again in every worker.
    context: BaseContext
    if threading.active_count() == 1:
        context = multiprocessing.get_context("fork")
    else:
        server = multiprocessing.get_context("forkserver")
        server.set_forkserver_preload(["dispatch.content.loader"])
        context = server
    with ProcessPoolExecutor(_cores(), mp_context=context, initializer=_init_worker,
                             initargs=(settings.site.url, settings.site.tz)) as pool:
        # In slices, so results wait in memory for at most one slice.
        for start in range(0, len(jobs), FLUSH_EVERY * 4):
            part = jobs[start:start + FLUSH_EVERY * 4]
            yield from pool.map(_read_and_parse, [f for f, _ in part], [s for _, s in part],
                                chunksize=25)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


def load_site(settings: Settings, cache: ArticleCache | None = None,
              holders: Mapping[str, str] | None = None) -> LoadResult:
    """Every article of the site; ``holders`` maps each slug already recorded
    as published to the file that holds it (it keeps that slug)."""
    files, problems = discover(settings)
    cached = cache.load_entries() if cache is not None else {}
    fingerprint = f"{settings.fingerprint}|{CACHE_FORMAT}"
    loaded: list[Article] = []
    fresh: list[CacheEntry] = []
    hits = 0

    def flush() -> None:
        # Save what was parsed, then hold what the cache hands back (an
        # article whose body stays in the cache) instead of the parsed one.
        if cache is None or not fresh:
            return
        cache.save_entries(fresh, [])
        kept = {e.source: cache.kept(e) for e in fresh}
        for index in range(len(loaded) - 1, -1, -1):
            if not kept:
                break
            swap = kept.pop(loaded[index].source, None)
            if swap is not None:
                loaded[index] = swap
        fresh.clear()

    jobs: list[tuple[_File, str | None]] = []
    for file in files:
        entry = cached.get(file.source)
        usable = entry is not None and entry.fingerprint == fingerprint
        if usable and entry is not None and (entry.size, entry.mtime_ns) == (file.size,
                                                                            file.mtime_ns):
            loaded.append(entry.article)
            problems.extend(entry.warnings)
            hits += 1
        else:
            jobs.append((file, entry.sha256 if usable and entry is not None else None))

    for parsed in _parse_all(jobs, settings):
        file = parsed.file
        if parsed.unchanged:
            # Touched but unchanged (a checkout, a copy): reuse, refresh the stat key.
            entry = cached[file.source]
            loaded.append(entry.article)
            problems.extend(entry.warnings)
            fresh.append(CacheEntry(file.source, file.size, file.mtime_ns, parsed.digest,
                                    fingerprint, entry.article, entry.warnings))
            hits += 1
        else:
            problems.extend(parsed.problems)
            if parsed.article is not None:
                loaded.append(parsed.article)
                fresh.append(CacheEntry(file.source, file.size, file.mtime_ns, parsed.digest,
                                        fingerprint, parsed.article,
                                        tuple(p for p in parsed.problems if not p.is_error)))
        if len(fresh) >= FLUSH_EVERY:
            flush()
    flush()

    articles = _reject_duplicate_slugs(loaded, problems, holders or {})
    if cache is not None:
        present = {f.source for f in files}
        gone = [source for source in cached if source not in present]
        if gone:
            cache.save_entries([], gone)
    articles.sort(key=lambda a: (a.date, a.slug))
    problems.sort(key=lambda p: (p.path, p.line or 0, p.severity is Severity.WARNING))
    return LoadResult(tuple(articles), tuple(problems), len(files), hits,
                      {a.slug: a for a in articles})


def _reject_duplicate_slugs(articles: list[Article], problems: list[Problem],
                            holders: Mapping[str, str]) -> list[Article]:
    """Two files claiming one slug: the one that held it first keeps it.

    That is the file recorded as publishing the slug, if it is one of them;
    otherwise the one with the earliest date (then the first path in sorted
    order). The others are refused, naming the holder, so an article
    readers already have never leaves the feeds because of a newcomer.
    """
    groups: dict[str, list[Article]] = defaultdict(list)
    for article in articles:
        groups[article.slug].append(article)
    kept: list[Article] = []
    for slug, group in groups.items():
        if len(group) == 1:
            kept.append(group[0])
            continue
        recorded = [a for a in group if a.source == holders.get(slug)]
        keeper = recorded[0] if recorded else min(group, key=lambda a: (a.date, a.source))
        kept.append(keeper)
        why = "published it first" if recorded else "has the earlier date"
        for article in sorted(group, key=lambda a: a.source):
            if article is keeper:
                continue
            problems.append(Problem(
                article.source, f"duplicate slug {slug!r}: {keeper.source} {why} and keeps it; "
                "this file is refused", None, "slug",
                "a slug unique across content/ (set slug: or rename the file)"))
    return kept
