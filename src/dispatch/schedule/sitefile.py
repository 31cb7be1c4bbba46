"""A site's ``schedules.yaml`` checked against the site: lists, templates, the clock.

``spec.parse_schedules`` knows only the text. Here we add what needs the
world outside it: subscriber lists that exist, email templates that exist,
and one-off dates already past. Used by ``dispatch check``, on start-up and
on every hot reload.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from dispatch.config import Settings
from dispatch.errors import Problem, Severity
from dispatch.schedule.model import EMAIL_KINDS, At, Schedule, ScheduleSet
from dispatch.schedule.spec import FILE, field_name, parse_schedules
from dispatch.store.engine import Store

PACKAGED_TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "email"


def schedules_path(settings: Settings) -> Path:
    return settings.root / FILE


def known_audiences(settings: Settings, store: Store | None) -> set[str] | None:
    """Subscriber list names (in the store, or synced from CSV files by
    ``[subscribers.lists]``), or None when there are none to check against."""
    from dispatch.store.schema import mailing_lists
    from dispatch.subscribers.sync import synced_lists

    names = set(synced_lists(settings)[0])
    if store is not None:
        try:
            with store.read() as conn:
                names.update(conn.execute(select(mailing_lists.c.name)).scalars())
        except SQLAlchemyError:
            pass  # no lists table yet: the file's lists are all we know
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
                     audiences: set[str] | None, now: datetime) -> list[Problem]:
    problems: list[Problem] = []
    templates = known_templates(settings)
    unchecked_said = False
    for s in schedules:
        if isinstance(s.trigger, At) and s.trigger.when <= now and s.enabled:
            problems.append(_problem(
                s, "at", f"{s.trigger.when.astimezone(s.tz):%Y-%m-%d %H:%M %Z} is in the past; "
                "this one-off schedule will never fire", "a future date and time",
                Severity.WARNING))
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
        if s.template is not None and s.template not in templates:
            severity = Severity.ERROR if templates else Severity.WARNING
            problems.append(_problem(
                s, "template", f"there is no email template \"{s.template}\"",
                "a file in templates/email/ such as " + (", ".join(sorted(templates)) or
                                                          "digest.html"), severity))
    return problems


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


def check_text(text: str, settings: Settings, now: datetime,
               store: Store | None = None) -> tuple[ScheduleSet, list[Problem]]:
    """Parse and check; schedules with a context error are left out (and reported)."""
    schedule_set, problems = parse_schedules(text, settings.site.timezone)
    audiences = known_audiences(settings, store)
    found = context_problems(schedule_set.schedules, settings, audiences, now)
    broken = {p.field.split(".")[0] for p in found if p.is_error and p.field}
    kept = tuple(s for s in schedule_set.schedules if f"schedules[{s.index}]" not in broken)
    problems = sorted(problems + found, key=lambda p: p.line or 0)
    return ScheduleSet(kept, schedule_set.timezone, schedule_set.fingerprint), problems


def read_schedules(settings: Settings, now: datetime,
                   store: Store | None = None) -> tuple[ScheduleSet, list[Problem]]:
    """The site's schedules; no file means no schedules (not an error)."""
    path = schedules_path(settings)
    if not path.exists():
        return ScheduleSet(timezone=settings.site.timezone), []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return ScheduleSet(timezone=settings.site.timezone), [
            Problem(FILE, f"cannot be read: {exc}", None, None, "a UTF-8 text file")]
    return check_text(text, settings, now, store)


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
    fresh, problems = read_schedules(settings, now, store)
    if fresh.fingerprint in (current.fingerprint, rejected):
        return Reload(current, [], False, fresh.fingerprint)
    if any(p.is_error for p in problems):
        return Reload(current, problems, False, fresh.fingerprint)
    return Reload(fresh, problems, True, fresh.fingerprint)


def validation_store(settings: Settings) -> Store | None:
    """The site's store if it already exists, for checking audiences.

    ``dispatch check`` must not create a database as a side effect, so a
    missing SQLite file or an unreachable server means "cannot check".
    """
    from dispatch.errors import StoreError
    from dispatch.store.engine import open_store

    url = settings.database_url
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if not path or path == ":memory:" or not Path(path).exists():
            return None
    try:
        return open_store(url, create_dirs=False, run_migrations=False)
    except StoreError:
        return None
