"""What ``dispatch check`` found about the site's emails, kept between runs.

Checking the emails means rendering up to a dozen of them through Jinja and
premailer (and one edition per schedule with a subject or template), which
costs more to import than the rest of ``check`` together.
What that finds depends only on what the renderer reads, so the problems are
kept in the state folder under a key made of all of it, and a later check
whose key matches reports them again without importing the renderer:

- dispatch.toml as written, and the site's folders (every setting comes from
  that file; the environment only supplies secrets and transport URLs, which
  no email check reads);
- the site's email templates, by content;
- the bundled templates and the code rendering runs (dispatch's render,
  schedule, content and values packages and the modules they share), by
  size and modification time, and the installed version;
- the files of the libraries that render (Jinja, premailer, cssutils, lxml),
  by size and modification time, so an upgrade is seen;
- which articles are checked (see :func:`email_samples`): each one's source,
  slug and file digest, and whether it is still scheduled; for a
  schedule's edition, the schedule as read from schedules.yaml;
- the pixel size of every site image the rendered emails and the articles
  show (image sizes set ``height`` attributes, and a missing size is a
  warning), kept in the record and read again before it is trusted.

``dispatch run`` keeps its own small record here too (``email-check.json``):
the key its last pass checked published articles' emails under, and the
articles it held back, so a template change re-checks unchanged articles.

Nothing here imports the renderer; the module is light on purpose.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from dispatch.config import Settings
from dispatch.errors import Problem, Severity
from dispatch.models import Article
from dispatch.render import images

CHECK_FILE = "check-email.json"
SUBJECTS_FILE = "check-subjects.json"
CHECK_NEWEST = 10
"""How many of the newest published articles `dispatch check` renders in full."""

_PACKAGE = Path(__file__).resolve().parent.parent
_RENDERERS = ("jinja2", "markupsafe", "premailer", "cssutils", "cssselect", "lxml")


def email_samples(articles: Sequence[Article], now: datetime) -> list[Article]:
    """The articles whose emails ``dispatch check`` renders: every scheduled
    one and the newest published ones (a digest takes the most recent).

    Rendering a 10,000-article archive through premailer would make the check
    take minutes and tell nobody anything new. Empty when there are none.
    """
    emailable = [a for a in articles if a.email and a.status == "published"]
    scheduled = [a for a in emailable if not a.is_published(now)]
    recent = sorted((a for a in emailable if a.is_published(now)),
                    key=lambda a: (a.date, a.slug), reverse=True)[:CHECK_NEWEST]
    return scheduled + recent


def _site_templates(settings: Settings, digest: Any) -> None:
    folder = settings.templates_dir / "email"
    if folder.is_dir():
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())


def _stamp(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:
        return f"{path}:missing"
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def _code_stamps() -> list[str]:
    """Size and modification time of the renderer's code and bundled
    templates, ours (and the schedule checks') and the libraries'."""
    stamps: list[str] = []
    for folder in ("render", "schedule", "content", "values", "templates/email"):
        stamps.extend(_stamp(p) for p in sorted((_PACKAGE / folder).rglob("*"))
                      if p.is_file() and "__pycache__" not in p.parts)
    for name in ("errors.py", "models.py", "sections.py", "unsubscribe.py"):
        stamps.append(_stamp(_PACKAGE / name))
    for module in _RENDERERS:
        spec = find_spec(module)
        stamps.append(_stamp(Path(spec.origin)) if spec and spec.origin else f"{module}:none")
    return stamps


def render_key(settings: Settings) -> str:
    """Everything a render of the site reads but its articles (see the module text)."""
    from dispatch import __version__

    digest = hashlib.sha256()
    for part in (__version__, str(settings.root), str(settings.content_dir),
                 str(settings.templates_dir), str(settings.state_dir), settings.source_text,
                 *_code_stamps()):
        digest.update(part.encode() + b"\0")
    _site_templates(settings, digest)
    return digest.hexdigest()


def check_key(settings: Settings, samples: Sequence[Article], now: datetime) -> str:
    """The key the email check's problems are kept under."""
    digest = hashlib.sha256(render_key(settings).encode())
    for article in samples:
        digest.update(f"{article.source}|{article.slug}|{article.content_hash}|"
                      f"{article.is_published(now)}\0".encode())
    return digest.hexdigest()


def _sizes(settings: Settings, urls: Iterable[str]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for url in urls:
        size = images.site_image_size(url, settings.site.url, settings.root)
        out.append([url, None if size is None else [size.width, size.height]])
    return out


def _problem(data: dict[str, Any]) -> Problem:
    return Problem(path=str(data["path"]), message=str(data["message"]), line=data["line"],
                   field=data["field"], expected=data["expected"],
                   severity=Severity(data["severity"]))


def _entry(settings: Settings, problems: Sequence[Problem],
           image_urls: Iterable[str]) -> dict[str, Any]:
    return {"images": _sizes(settings, dict.fromkeys(image_urls)),
            "problems": [{"path": p.path, "message": p.message, "line": p.line,
                          "field": p.field, "expected": p.expected,
                          "severity": p.severity.value} for p in problems]}


Found = tuple[list[Problem], list[str]]
"""What a check that renders found, and the URLs of the images it showed."""


class KeptChecks:
    """The problems of checks that render, each under its own key, in one
    file of the state folder. Call :meth:`save` when done: the file then
    holds exactly the entries used this time (a stale one is dropped)."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.settings = settings
        self.path = settings.state_dir / name
        self._old: dict[str, Any] | None = None
        self._used: dict[str, Any] = {}
        self._base: str | None = None

    def key(self, *parts: str) -> str:
        """A key made of :func:`render_key` and ``parts``."""
        if self._base is None:
            self._base = render_key(self.settings)
        digest = hashlib.sha256(self._base.encode())
        for part in parts:
            digest.update(part.encode() + b"\0")
        return digest.hexdigest()

    def _read(self) -> dict[str, Any]:
        if self._old is None:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self._old = dict(data["entries"])
            except (OSError, ValueError, KeyError, TypeError):
                self._old = {}
        return self._old

    def kept(self, key: str) -> list[Problem] | None:
        """The problems kept under ``key``, or None when there are none to
        trust (none kept, an image changed, an unreadable entry)."""
        entry = self._read().get(key)
        try:
            if entry is None or _sizes(self.settings, (url for url, _size in entry["images"])) \
                    != entry["images"]:
                return None
            found = [_problem(p) for p in entry["problems"]]
        except (ValueError, KeyError, TypeError):
            return None
        self._used[key] = entry
        return found

    def problems(self, key: str, check: Callable[[], Found]) -> list[Problem]:
        """The problems kept under ``key``, else what ``check`` finds (kept)."""
        found = self.kept(key)
        if found is None:
            found, shown = check()
            self._used[key] = _entry(self.settings, found, shown)
        return found

    def save(self) -> None:
        """Only in a state folder that exists (check creates nothing on a site
        no command has run on), and only when something changed; a failure
        to write only means the next check renders again."""
        if self._used == self._read() or not self.settings.state_dir.is_dir():
            return
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps({"entries": self._used}), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):  # a read-only folder: nothing was written
                tmp.unlink(missing_ok=True)


RECHECK_FILE = "email-check.json"


def previous_email_check(settings: Settings) -> tuple[str, frozenset[str]]:
    """The :func:`render_key` the last pass checked emails under, and the sources of
    already-published articles it held back (they are checked again until
    fixed). An unreadable record only means one more full check."""
    path = settings.state_dir / RECHECK_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return str(data["fingerprint"]), frozenset(str(s) for s in data["held"])
    except (OSError, ValueError, KeyError, TypeError):
        return "", frozenset()


def record_email_check(settings: Settings, fingerprint: str, held: Sequence[str]) -> None:
    path = settings.state_dir / RECHECK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"fingerprint": fingerprint, "held": sorted(held)}),
                   encoding="utf-8")
    os.replace(tmp, path)
