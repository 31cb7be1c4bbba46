"""A site's ``schedules.yaml`` checked against the site: lists, templates, the clock.

``spec.parse_schedules`` knows only the text. Here we add what needs the
world outside it: subscriber lists that exist, email templates that exist,
subjects that fill in for a sample article, and one-off dates already past
(and not fired). Used by ``dispatch check``, on start-up and on every hot
reload. The last version without errors is kept in the state folder, so a
restart while the file has a mistake keeps the previous schedules in force.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Collection, Iterable
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from dispatch.config import Settings
from dispatch.errors import Problem, Severity, StoreError
from dispatch.models import Article
from dispatch.schedule.model import EMAIL_KINDS, At, Schedule, ScheduleSet
from dispatch.schedule.spec import FILE, field_name, parse_file
from dispatch.store.engine import Store, in_list, utc

if TYPE_CHECKING:
    from dispatch.render.checkcache import KeptChecks

log = logging.getLogger(__name__)

PACKAGED_TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "email"
LAST_GOOD = "schedules.last-good.yaml"


def schedules_path(settings: Settings) -> Path:
    return settings.root / FILE


def known_audiences(settings: Settings, store: Store | None) -> set[str] | None:
    """Subscriber list names (in the store, or synced from CSV files by
    ``[subscribers.lists]``), or None when there are none to check against."""
    from dispatch.subscribers.sync import synced_lists

    names = set(synced_lists(settings)[0])
    if store is not None:
        # No lists table yet: the file's lists are all we know.
        with contextlib.suppress(StoreError):
            names.update(name for (name,) in store.rows("SELECT name FROM mailing_lists"))
    return names or None


def known_templates(settings: Settings) -> set[str]:
    names: set[str] = set()
    for folder in (settings.templates_dir / "email", PACKAGED_TEMPLATES):
        if folder.is_dir():
            names.update(p.relative_to(folder).as_posix() for p in folder.rglob("*.html"))
    return names


def _problem(schedule: Schedule, key: str, message: str, expected: str | None,
             severity: Severity = Severity.ERROR) -> Problem:
    return Problem(FILE, message, schedule.lines.get(key, schedule.line),
                   field_name(("schedules", schedule.index, key)), expected, severity)


def context_problems(schedules: Iterable[Schedule], settings: Settings,
                     audiences: set[str] | None, now: datetime,
                     fired: Collection[str] = ()) -> list[Problem]:
    """``fired``: ids of schedules that already have a recorded firing."""
    from dispatch.render.checkcache import SUBJECTS_FILE, KeptChecks

    problems: list[Problem] = []
    templates = known_templates(settings)
    kept = KeptChecks(settings, SUBJECTS_FILE)
    unchecked_said = False
    for s in schedules:
        if (isinstance(s.trigger, At) and s.trigger.when <= now and s.enabled
                and s.id not in fired):  # one that went out is not a mistake
            # An error, not a warning: a date in the past is a typo (a wrong
            # year, say) that would otherwise pass ``check`` and send nothing.
            problems.append(_problem(
                s, "at", f"{s.trigger.when.astimezone(s.tz):%Y-%m-%d %H:%M %Z} is in the past "
                "and this one-off never fired, so it would never be sent",
                "a future date and time (or remove the entry)"))
        if s.kind in EMAIL_KINDS:
            for name in s.audience:
                if audiences is None:
                    if not unchecked_said:  # once per file, not once per schedule
                        problems.append(_problem(
                            s, "audience", "audiences cannot be checked: no subscriber lists "
                            "exist yet", "import subscribers first", Severity.WARNING))
                    unchecked_said = True
                elif name not in audiences:
                    problems.append(_problem(
                        s, "audience", f"there is no subscriber list \"{name}\"",
                        "one of " + ", ".join(sorted(audiences))))
        if s.kind == "social":
            problems.extend(_social_problems(s, settings))
        missing = s.template is not None and s.template not in templates
        if missing:
            severity = Severity.ERROR if templates else Severity.WARNING
            problems.append(_problem(
                s, "template", f"there is no email template \"{s.template}\"",
                "a file in templates/email/ such as " + (", ".join(sorted(templates)) or
                                                          "digest.html"), severity))
        if s.kind in EMAIL_KINDS and (s.subject is not None or s.template is not None) \
                and not missing:
            problems.extend(subject_problems(s, settings, kept))
    kept.save()
    return problems


SUBJECT_EXPECTED = ("placeholders such as {{ site.title }}, {{ articles | length }} or "
                    "{{ article.title }}")
_TOP_NAMES = ("site", "sender", "email", "kind", "edition_id", "articles", "article", "intro")
_UNDEFINED = re.compile(r"'(\w+)' is undefined")
_NO_ATTRIBUTE = re.compile(r"has no attribute '(\w+)'")


def sample_article(settings: Settings) -> Article:
    """What a subject is tried on: one article with every field filled in."""
    return Article(
        slug="sample", source="(sample)", title="Sample article",
        date=datetime(2026, 1, 5, 9, tzinfo=UTC), summary="A sample dek.",
        body_markdown="Sample body.\n", body_html="<p>Sample body.</p>", sources_html="",
        sources=(), url=f"{settings.site.url}/sample/", content_hash="0", reading_minutes=1,
        excerpt="Sample body.", category="Sample", tags=("sample",), author="A. Author")


def _attribute_names() -> list[str]:
    from dispatch.render.edition import ArticleView

    # site, sender and email are plain mappings in the render context.
    return [f.name for f in fields(ArticleView)] + [
        "title", "url", "language", "description", "home", "name", "email", "postal_address",
        "why", "disclaimer"]


def _explain(detail: str, source: str) -> str:
    """Jinja's "'artcles' is undefined" in staff's terms, with the nearest name."""
    undefined, attribute = _UNDEFINED.search(detail), _NO_ATTRIBUTE.search(detail)
    owner = ""
    if undefined:
        name, names = undefined.group(1), list(_TOP_NAMES)
        said = f"there is no placeholder \"{name}\""
    elif attribute:
        name, names = attribute.group(1), _attribute_names()
        written = re.search(r"([A-Za-z_][\w.]*)\." + re.escape(name) + r"\b", source)
        owner = f"{written.group(1)}." if written else ""
        said = f"there is no \"{owner}{name}\""
    else:
        return detail
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return said + (f"; did you mean \"{owner}{close[0]}\"?" if close else "")


def subject_problems(schedule: Schedule, settings: Settings,
                     kept: KeptChecks | None = None) -> list[Problem]:
    """Render the schedule's edition for a sample article, exactly as at send
    time (strict: an unknown placeholder is an error), so a typo in ``subject``
    is found by ``dispatch check`` and on load, not by every firing.

    With ``kept``, what an earlier check found for the same schedule under
    the same templates, settings and code is reported without rendering."""
    if kept is None:
        return _subject_check(schedule, settings)[0]
    return kept.problems(kept.key(repr(schedule)), lambda: _subject_check(schedule, settings))


def _subject_check(schedule: Schedule, settings: Settings) -> tuple[list[Problem], list[str]]:
    """The problems, and the images the sample edition shows."""
    from dispatch.errors import InputError
    from dispatch.render.images import image_urls
    from dispatch.schedule.actions import schedule_edition
    from dispatch.schedule.decide import edition_id

    sample = sample_article(settings)
    eid = edition_id(schedule, datetime(2026, 1, 5, 9, tzinfo=UTC),
                     sample.slug if schedule.kind == "article" else "")
    try:
        edition = schedule_edition(settings, schedule, [sample], eid)
    except InputError as exc:
        about_subject = [p for p in exc.problems if p.field == "subject"]
        if about_subject or (not exc.problems and "subject" in str(exc)):
            detail = (about_subject[0].message if about_subject else "it comes out empty")
            detail = detail.removeprefix(f"{schedule.subject!r}: ")
            shown = '"' + (schedule.subject or "").replace('"', '\\"') + '"'
            return [_problem(schedule, "subject", f"{shown} cannot be filled in: "
                             + _explain(detail, schedule.subject or ""), SUBJECT_EXPECTED)], []
        if schedule.template is None:
            return [], []  # the default templates are `dispatch check`'s email checks' business
        return [_problem(schedule, "template", f"\"{schedule.template}\" cannot be rendered: "
                         + "; ".join(str(p) for p in exc.problems or [exc]), None)], []
    except Exception as exc:  # e.g. {{ 1/0 }}: sending would fail the same way
        key = "subject" if schedule.subject is not None else "template"
        return [_problem(schedule, key, f"\"{getattr(schedule, key)}\" cannot be rendered: "
                         f"{type(exc).__name__}: {exc}", SUBJECT_EXPECTED if key == "subject"
                         else None)], []
    return [], image_urls(edition.html)


def _social_problems(schedule: Schedule, settings: Settings) -> list[Problem]:
    """Networks must be configured, and the social stage must leave timing to us."""
    from dispatch.social.config import social_problems

    social, _ = social_problems(settings)
    configured = sorted(n.name for n in social.networks)
    found = []
    for name in schedule.networks or ():
        if name not in configured:
            found.append(_problem(
                schedule, "networks", f"there is no [social.{name}] in dispatch.toml",
                "one of " + (", ".join(configured) or "the configured networks")))
    # "auto" (the default) already leaves networks with a social schedule to
    # that schedule; only an explicit `true` posts around it.
    if social.on_publish is True:
        found.append(_problem(
            schedule, "kind", "[social] on_publish is true in dispatch.toml, so posts are "
            "queued as soon as an article is published and this schedule's timing and "
            "filters have no effect", "on_publish = false under [social]", Severity.WARNING))
    return found


def _fired(store: Store | None, schedules: Iterable[Schedule]) -> set[str]:
    """Ids of one-off schedules whose firing happened: recorded, or due while the
    scheduler already knew the schedule (it then records it, sent or missed)."""
    at = {s.id: s.trigger.when for s in schedules if isinstance(s.trigger, At)}
    if store is None or not at:
        return set()
    # Plain reads (Store.rows): `dispatch check` reads these without SQLAlchemy.
    ids, params = in_list("id", list(at))
    try:
        fired = {found for (found,) in store.rows(
            f"SELECT DISTINCT schedule_id FROM schedule_runs WHERE schedule_id IN ({ids})",
            params)}
        known = {found: utc(seen) for found, seen in store.rows(
            f"SELECT schedule_id, first_seen_at FROM schedule_state WHERE schedule_id IN ({ids})",
            params)}
    except StoreError:
        return set()  # a database not yet migrated has fired nothing
    return fired | {i for i, seen in known.items() if seen < at[i]}


def check_text(text: str, settings: Settings, now: datetime,
               store: Store | None = None) -> tuple[ScheduleSet, list[Problem]]:
    """Parse and check; schedules with a context error are left out (and reported).

    Entries with mistakes of their own are checked against the site too, so
    every mistake is reported at once.
    """
    parsed = parse_file(text, settings.site.timezone)
    schedule_set = parsed.schedules
    audiences = known_audiences(settings, store)
    found = context_problems(parsed.checkable, settings, audiences, now,
                             _fired(store, parsed.checkable))
    broken = {p.field.split(".")[0] for p in found if p.is_error and p.field}
    kept = tuple(s for s in schedule_set.schedules if f"schedules[{s.index}]" not in broken)
    problems = sorted(parsed.problems + found, key=lambda p: p.line or 0)
    return ScheduleSet(kept, schedule_set.timezone, schedule_set.fingerprint), problems


def _read_text(settings: Settings) -> tuple[str | None, list[Problem]]:
    """The file's text; None with no problem when there is no file."""
    path = schedules_path(settings)
    if not path.exists():
        return None, []
    try:
        return path.read_text(encoding="utf-8-sig"), []
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(FILE, f"cannot be read: {exc}", None, None, "a UTF-8 text file")]


def _fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def read_schedules(settings: Settings, now: datetime,
                   store: Store | None = None) -> tuple[ScheduleSet, list[Problem]]:
    """The schedules in force: the site's file, or, while it has errors, the
    last version of it that had none (``.dispatch/schedules.last-good.yaml``).

    No file means no schedules (not an error). On start-up and leader
    take-over this is what keeps a half-edited file from dropping a send.
    """
    text, problems = _read_text(settings)
    if text is None and not problems:
        if last_good_path(settings).exists():
            # Schedules ran here before: a renamed or deleted file (say
            # schedules.yml) silently stopping every send is worth a word.
            return ScheduleSet(timezone=settings.site.timezone), [Problem(
                FILE, "not found, so nothing is scheduled; the last version that worked is "
                f"in {last_good_path(settings)}", None, None,
                "the file back (or `schedules: []` to stop every send on purpose)",
                Severity.WARNING)]
        return ScheduleSet(timezone=settings.site.timezone), []
    schedule_set = ScheduleSet(timezone=settings.site.timezone)
    if text is not None:
        schedule_set, problems = check_text(text, settings, now, store)
        if not any(p.is_error for p in problems):
            save_last_good(settings, text, create=store is not None)
            return schedule_set, problems
    previous = _last_good(settings, now, store, schedule_set.fingerprint)
    if previous is None:
        return schedule_set, problems
    return previous[0], problems + previous[1]


def last_good_path(settings: Settings) -> Path:
    return settings.state_dir / LAST_GOOD


def save_last_good(settings: Settings, text: str, *, create: bool) -> None:
    """Keep ``text`` as the version to fall back on; atomic, so a crash leaves
    the old copy or the new one, never half of one. ``create``: make the
    state folder if needed (``dispatch check`` on a new site does not)."""
    path = last_good_path(settings)
    try:
        if path.exists() and path.read_text(encoding="utf-8") == text:
            return
        if not path.parent.is_dir():
            if not create:
                return
            path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=".last-good-", dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        # Not fatal: the schedules in force are in memory; only a restart
        # with a broken file would miss the copy.
        log.warning("could not save %s: %s", path, exc)


def _last_good(settings: Settings, now: datetime, store: Store | None,
               fingerprint: str) -> tuple[ScheduleSet, list[Problem]] | None:
    """The saved version, checked again against the site as it is now.

    Its set carries the broken file's ``fingerprint``: the schedules in force
    stand for the file as read, so a hot reload does not report it again.
    """
    path = last_good_path(settings)
    try:
        text = path.read_text(encoding="utf-8")
        saved = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except (OSError, UnicodeDecodeError):
        return None
    schedule_set, found = check_text(text, settings, now, store)
    shown = path.relative_to(settings.root) if path.is_relative_to(settings.root) else path
    local = saved.astimezone(ZoneInfo(settings.site.timezone))
    problems = [Problem(FILE, f"has errors, so the last version without any (saved "
                        f"{local:%Y-%m-%d %H:%M %Z} in {shown.as_posix()}) stays in force "
                        "until they are fixed", None, None, None, Severity.WARNING)]
    left_out = sorted({p.field.split(".")[0] for p in found if p.is_error and p.field})
    if left_out:
        problems.append(Problem(FILE, "the saved version no longer fits the site, so "
                                f"{', '.join(left_out)} of it are left out", None, None, None,
                                Severity.WARNING))
    return replace(schedule_set, fingerprint=fingerprint), problems


@dataclass(frozen=True)
class Reload:
    schedules: ScheduleSet
    """The schedules in force after the reload."""
    problems: list[Problem]
    changed: bool
    fingerprint: str
    """Of the file as read now; pass it back as ``rejected`` after an error."""


def reload_schedules(settings: Settings, current: ScheduleSet, now: datetime,
                     store: Store | None = None, rejected: str = "") -> Reload:
    """Hot reload. An edit with any error changes nothing: the previous
    schedules stay in force until the file is fixed (a half-applied file is
    worse than none). A file already seen (in force, or ``rejected``) is not
    reported again.
    """
    text, problems = _read_text(settings)
    fingerprint = _fingerprint(text) if text is not None else ""
    # Compare before checking: the file is looked at every few seconds, and
    # the checks read the database and render a sample of each email.
    if fingerprint in (current.fingerprint, rejected) and not problems:
        return Reload(current, [], False, fingerprint)
    if text is None:
        if problems:
            return Reload(current, problems, False, fingerprint)
        return Reload(ScheduleSet(timezone=settings.site.timezone), [], True, fingerprint)
    fresh, problems = check_text(text, settings, now, store)
    if any(p.is_error for p in problems):
        return Reload(current, problems, False, fingerprint)
    save_last_good(settings, text, create=store is not None)
    return Reload(fresh, problems, True, fingerprint)


def validation_store(settings: Settings) -> Store | None:
    """The site's store if it already exists, for checking audiences.

    ``dispatch check`` must not create a database as a side effect, so a
    missing SQLite file or an unreachable server means "cannot check".
    """
    from dispatch.store.engine import existing_store

    return existing_store(settings.database_url)
