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

from dispatch.config import Settings
from dispatch.content.cache import CACHE_FORMAT, ArticleCache, CacheEntry
from dispatch.errors import Problem, Severity
from dispatch.models import Article

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


def load_one(file: _File, data: bytes, digest: str,
             settings: Settings) -> tuple[Article | None, list[Problem]]:
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

    return build_article(text, file.source, digest, settings.site.url, settings.site.tz)


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
    for file in files:
        entry = cached.get(file.source)
        if (entry is not None and entry.fingerprint == fingerprint
                and entry.size == file.size and entry.mtime_ns == file.mtime_ns):
            loaded.append(entry.article)
            problems.extend(entry.warnings)
            hits += 1
            continue
        try:
            data = Path(file.path).read_bytes()
        except OSError as exc:
            problems.append(Problem(file.source, f"cannot be read: {exc.strerror}"))
            continue
        digest = hashlib.sha256(data).hexdigest()
        if entry is not None and entry.fingerprint == fingerprint and entry.sha256 == digest:
            # Touched but unchanged (a checkout, a copy): reuse, refresh the stat key.
            loaded.append(entry.article)
            problems.extend(entry.warnings)
            fresh.append(CacheEntry(file.source, file.size, file.mtime_ns, digest, fingerprint,
                                    entry.article, entry.warnings))
            hits += 1
            continue
        article, found = load_one(file, data, digest, settings)
        problems.extend(found)
        if article is not None:
            loaded.append(article)
            fresh.append(CacheEntry(file.source, file.size, file.mtime_ns, digest, fingerprint,
                                    article, tuple(p for p in found if not p.is_error)))

    articles = _reject_duplicate_slugs(loaded, problems, holders or {})
    if cache is not None:
        present = {f.source for f in files}
        cache.save_entries(fresh, [source for source in cached if source not in present])
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
