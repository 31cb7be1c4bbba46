"""``schedules.yaml``: read it, check it, and report every mistake at once.

Structure and types are checked by pydantic (one model per schedule, so one
broken entry never hides the mistakes in the next); each pydantic error is
turned into a :class:`~dispatch.errors.Problem` that names the line, the
field path (``schedules[2].cron``) and what was expected. Checks that need
the outside world (audience lists, templates, the clock) live in
``sitefile.py`` beside this module.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from dispatch.errors import Problem, Severity
from dispatch.schedule.cron import (
    CRON_EXPECTED,
    CronError,
    instants,
    parse_cron,
    restricts_both_days,
)
from dispatch.schedule.model import (
    DEFAULT_MAX_LATENESS,
    DURATION_EXPECTED,
    MIN_EVERY,
    At,
    Cron,
    Every,
    OnPublish,
    QuietHours,
    Schedule,
    ScheduleSet,
    Trigger,
    format_duration,
    parse_duration,
)
from dispatch.schedule.triggers import next_firing, normalise_cron
from dispatch.schedule.yamlfile import LocatedYaml, Path, YamlSyntaxError, load_located
from dispatch.values import controls

FILE = "schedules.yaml"
TRIGGER_KEYS = ("cron", "at", "on_publish", "every")
QUIET_EXPECTED = "a daily window such as \"21:00-07:00\""
# A firing is a little late even when on time (the pass that runs it takes a
# moment): below a minute every firing would be skipped as late.
MIN_LATENESS = timedelta(minutes=1)


def _q(value: Any) -> str:
    """Quote a value the way staff wrote it: "0 8 * * MONDAY"."""
    return '"' + str(value).replace('"', '\\"') + '"'


def _fail(message: str, expected: str) -> PydanticCustomError:
    # The message becomes the Problem's text and ctx["expected"] its hint.
    # pydantic only substitutes "{expected}" (the context's one key) and
    # leaves other braces alone, so a template in the message needs no escaping.
    return PydanticCustomError("dispatch", message.replace("{expected}", "(expected)"),
                               {"expected": expected})


def _duration(value: Any, *, at_least: Any = None) -> Any:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value == 0:
        value = "0"  # `delay: 0` means no delay; YAML reads it as a number
    if not isinstance(value, str):
        raise _fail(f"{_q(value)} is not a duration", DURATION_EXPECTED)
    try:
        delta = parse_duration(value)
    except ValueError as exc:
        raise _fail(str(exc), DURATION_EXPECTED) from None
    if at_least is not None and delta < at_least:
        raise _fail(f"{_q(value)} is too short", f"at least {format_duration(at_least)}")
    return delta


def _timezone(value: Any) -> Any:
    if value is None:
        return None
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise _fail(f"{_q(value)} is not a known timezone",
                    "an IANA name such as Europe/London or America/New_York") from None
    return str(value)


def _quiet(value: Any) -> Any:
    if value is None:
        return None
    text = str(value).replace(" ", "")
    try:
        start_text, end_text = text.split("-")
        start, end = time.fromisoformat(start_text.zfill(5)), time.fromisoformat(end_text.zfill(5))
    except ValueError:
        raise _fail(f"{_q(value)} is not a time window", QUIET_EXPECTED) from None
    if start == end:
        raise _fail(f"{_q(value)} is an empty window", QUIET_EXPECTED)
    return QuietHours(start, end)


def _names(value: Any) -> Any:
    """Let staff write ``audience: weekly`` for a list of one."""
    return [value] if isinstance(value, str) else value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class _Shared(_Strict):
    """Checks for the keys a schedule and the file's top level both take
    (``timezone``, ``max_lateness``, ``quiet_hours``); each model declares
    the fields itself, in its own order."""

    @field_validator("timezone", mode="before", check_fields=False)
    @classmethod
    def check_timezone(cls, value: Any) -> Any:
        return _timezone(value)

    @field_validator("max_lateness", mode="before", check_fields=False)
    @classmethod
    def check_lateness(cls, value: Any) -> Any:
        return _duration(value, at_least=MIN_LATENESS)

    @field_validator("quiet_hours", mode="before", check_fields=False)
    @classmethod
    def check_quiet(cls, value: Any) -> Any:
        return _quiet(value)


class ScheduleModel(_Shared):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    kind: Literal["digest", "article", "social", "feeds"]
    note: str | None = None
    cron: str | None = None
    at: datetime | None = None
    starts: datetime | date | None = None
    on_publish: bool | None = None
    every: Any = None
    delay: Any = None
    timezone: str | None = None
    audience: list[str] = []
    categories: list[str] = []
    tags: list[str] = []
    max_articles: int | None = Field(default=None, ge=1)
    min_articles: int = Field(default=1, ge=1)
    subject: str | None = None
    intro: str | None = None
    template: str | None = None
    networks: list[str] | None = None
    enabled: bool = True
    max_lateness: Any = None
    quiet_hours: Any = None

    @field_validator("audience", "categories", "tags", "networks", mode="before")
    @classmethod
    def check_names(cls, value: Any) -> Any:
        return _names(value)

    @field_validator("cron")
    @classmethod
    def check_cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parse_cron(value)
        except CronError as exc:
            raise _fail(f"{_q(value)} is not a cron expression: {exc}", CRON_EXPECTED) from None
        return value

    @field_validator("at", "starts", mode="before")
    @classmethod
    def check_not_a_number(cls, value: Any) -> Any:
        # pydantic reads a number as seconds since 1970: `at: 1900000000`
        # would be a date in 2030, and `at: 20271201` one in 1970.
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise _fail(f"{_q(value)} is a number, not a date and time",
                        "YYYY-MM-DD HH:MM, e.g. 2026-12-01 09:00")
        return value

    @field_validator("every", mode="before")
    @classmethod
    def check_every(cls, value: Any) -> Any:
        return _duration(value, at_least=MIN_EVERY)

    @field_validator("delay", mode="before")
    @classmethod
    def check_delay(cls, value: Any) -> Any:
        return _duration(value)

    @field_validator("subject")
    @classmethod
    def check_template(cls, value: str | None) -> str | None:
        # A subject is one header line: a line break (a `subject: |` block,
        # or one typed inside quotes) would otherwise be sent as a space, so
        # what is sent would not be what was written; like a title, refused.
        if value is not None and not controls.is_one_line(value):
            shown = controls.ONE_LINE.sub(lambda m: repr(m.group())[1:-1], value)
            raise _fail(f"{_q(shown)} contains a line break or control character, and a "
                        "subject is one line of the email's header",
                        "a subject on one line (in YAML, `>-` folds a long one)")
        if value is not None:
            try:
                jinja2.Environment().parse(value)
            except jinja2.TemplateSyntaxError as exc:
                raise _fail(f"{_q(value)} is not a valid template: {exc.message}",
                            "text with {{ placeholders }} such as "
                            "\"{{ site.title }}: {{ articles | length }} new\"") from None
        return value


class FileModel(_Shared):
    timezone: str | None = None
    max_lateness: Any = None
    quiet_hours: Any = None
    schedules: list[Any] = []


_FRIENDLY = {
    "missing": ("is missing", None),
    "int_parsing": ("{input} is not a whole number", "a whole number"),
    "int_type": ("{input} is not a whole number", "a whole number"),
    "bool_parsing": ("{input} is not yes/no", "true or false"),
    "bool_type": ("{input} is not yes/no", "true or false"),
    "string_type": ("{input} is not text", "text"),
    "list_type": ("{input} is not a list", "a list such as [a, b]"),
    "dict_type": ("is not a mapping of keys to values", "key: value lines"),
    "model_type": ("is not a mapping of keys to values", "key: value lines"),
    "greater_than_equal": ("{input} is too small", None),
    "literal_error": ("{input} is not allowed", None),
    "string_pattern_mismatch": ("{input} is not a valid id",
                                "lower-case letters, digits, - and _"),
}


def field_name(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _pydantic_problems(exc: ValidationError, base: Path, doc: LocatedYaml,
                       allowed: Iterable[str]) -> list[Problem]:
    problems = []
    for err in exc.errors():
        path = (*base, *err["loc"])
        line = doc.line(path)
        ctx = err.get("ctx") or {}
        kind = err["type"]
        expected = ctx.get("expected")
        if kind == "dispatch":
            message = err["msg"]
        elif kind == "extra_forbidden":
            key = str(err["loc"][-1])
            close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.5)
            hint = f"; did you mean {_q(close[0])}?" if close else ""
            message = f"unknown key {_q(key)}{hint}"
            expected = "one of " + ", ".join(sorted(allowed))
        elif kind.startswith(("datetime", "date_")):
            message = f"{_q(err.get('input'))} is not a date and time"
            expected = "YYYY-MM-DD HH:MM, e.g. 2026-12-01 09:00"
        elif kind in _FRIENDLY:
            template, friendly = _FRIENDLY[kind]
            message = template.format(input=_q(err.get("input")))
            expected = friendly or str(ctx.get("expected") or "") or None
            if kind == "greater_than_equal":
                expected = f"at least {ctx.get('ge')}"
            if kind == "literal_error":
                expected = f"one of {ctx.get('expected')}"
        else:
            message = err["msg"]
        problems.append(Problem(FILE, message, line, field_name(path), expected))
    return problems


@dataclass(frozen=True)
class ParsedFile:
    schedules: ScheduleSet
    """The schedules that may be put in force (no errors at all)."""
    problems: list[Problem]
    checkable: tuple[Schedule, ...]
    """Every entry whose kind is known, valid or not, with a stand-in trigger
    where its own is broken: the checks against the site run on these too,
    so one mistake in an entry never hides another."""


def parse_schedules(text: str, default_timezone: str = "UTC") -> tuple[ScheduleSet, list[Problem]]:
    """Every valid schedule plus every problem found; never raises for a mistake."""
    parsed = parse_file(text, default_timezone)
    return parsed.schedules, parsed.problems


def parse_file(text: str, default_timezone: str = "UTC") -> ParsedFile:
    fingerprint = hashlib.sha256(text.encode()).hexdigest()
    try:
        doc = load_located(text)
    except YamlSyntaxError as exc:
        return ParsedFile(ScheduleSet(fingerprint=fingerprint), [
            Problem(FILE, f"not valid YAML: {exc}", exc.line, None,
                    exc.expected or "indented key: value lines")], ())
    problems = [Problem(FILE, f"{_q(path[-1])} is written twice; only one counts", line,
                        field_name(path), "each key once") for path, line in doc.duplicates]
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        return ParsedFile(ScheduleSet(fingerprint=fingerprint), [
            Problem(FILE, "the file is not a mapping", 1, None, "a 'schedules:' list")], ())
    try:
        top = FileModel.model_validate(data)
    except ValidationError as exc:
        problems += _pydantic_problems(exc, (), doc, FileModel.model_fields)
        top = FileModel.model_validate({"schedules": data.get("schedules") or []}
                                       if isinstance(data.get("schedules"), list) else {})
    tz_name = top.timezone or default_timezone
    schedules: list[Schedule] = []
    checkable: list[Schedule] = []
    seen: dict[str, int | None] = {}
    for index, raw in enumerate(top.schedules):
        base: Path = ("schedules", index)
        raw_id = raw.get("id") if isinstance(raw, dict) else None
        duplicate = False
        if isinstance(raw_id, str) and raw_id in seen:
            duplicate = True
            problems.append(Problem(FILE, f"id {_q(raw_id)} is already used on line {seen[raw_id]}",
                                    doc.line((*base, "id")), field_name((*base, "id")),
                                    "a unique id per schedule"))
        elif isinstance(raw_id, str):
            seen[raw_id] = doc.line(base)
        broken: set[str] = set()
        try:
            model: ScheduleModel | None = ScheduleModel.model_validate(raw)
        except ValidationError as exc:
            problems += _pydantic_problems(exc, base, doc, ScheduleModel.model_fields)
            broken = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
            model = _partial(raw, broken)
        if model is None:
            continue
        schedule, found = _build(model, _Entry(raw, broken), top, tz_name, base, doc)
        problems += found
        if schedule is None:
            continue
        checkable.append(schedule)
        if not broken and not duplicate and not any(p.is_error for p in found):
            schedules.append(schedule)
    problems.sort(key=lambda p: p.line or 0)
    return ParsedFile(ScheduleSet(tuple(schedules), tz_name, fingerprint), problems,
                      tuple(checkable))


@dataclass(frozen=True)
class _Entry:
    """One entry as written, and which of its keys failed validation."""

    raw: dict[str, Any]
    broken: set[str]

    def given(self, key: str, model: ScheduleModel) -> bool:
        """Written with a value that means "yes" (a broken value still counts)."""
        if key in self.broken:
            return self.raw.get(key) is not None
        return getattr(model, key) not in (None, False)


def _partial(raw: Any, broken: set[str]) -> ScheduleModel | None:
    """The entry with its broken keys left out, so the rules across fields can
    still look at the rest; ``id`` and ``kind`` get stand-ins when broken."""
    if not isinstance(raw, dict):
        return None
    kept = {k: v for k, v in raw.items()
            if k in ScheduleModel.model_fields and k not in broken}
    stand_in = {"id": "x" if "id" in broken else kept.get("id", "x"),
                "kind": "feeds" if "kind" in broken else kept.get("kind", "feeds")}
    try:
        model = ScheduleModel.model_validate({**kept, **stand_in})
    except ValidationError:
        return None
    shown = raw.get("id") if raw.get("id") is not None else "(no id)"
    return model.model_copy(update={"id": str(shown)})


def _build(m: ScheduleModel, entry: _Entry, top: FileModel, tz_name: str, base: Path,
           doc: LocatedYaml) -> tuple[Schedule | None, list[Problem]]:
    """Rules across fields: one trigger, and each key only where it means something.

    Runs on partly broken entries too (``entry.broken``), checking what can be
    checked; returns a schedule (with a stand-in trigger if its own is broken)
    whenever the kind is known, for the checks against the site.
    """
    problems: list[Problem] = []
    kind = None if "kind" in entry.broken or "kind" not in entry.raw else m.kind

    def report(key: str, message: str, expected: str | None,
               severity: Severity = Severity.ERROR) -> None:
        path = (*base, key) if key else base
        problems.append(Problem(FILE, message, doc.line(path), field_name(path), expected,
                                severity))

    given = [k for k in TRIGGER_KEYS if entry.given(k, m)]
    one_of = "exactly one of cron, at, on_publish, every"
    if len(given) != 1:
        what = "no trigger" if not given else "two triggers (" + ", ".join(given) + ")"
        report(given[1] if len(given) > 1 else "", f"schedule {_q(m.id)} has {what}", one_of)
    trigger: Trigger = OnPublish()  # a stand-in while the real one is broken or ambiguous
    if len(given) == 1 and given[0] not in entry.broken:
        trigger = _trigger(m, tz_name, report)
    one = given[0] if len(given) == 1 else None
    if one is not None and m.delay is not None and one != "on_publish":
        report("delay", "delay only applies to on_publish schedules", "on_publish: true")
    if one is not None and kind == "article" and one != "on_publish":
        report(one, "an article schedule sends each new article, so it fires on publish",
               "on_publish: true (with an optional delay)")
    if one == "on_publish" and kind == "digest":
        report("on_publish", "a digest collects articles, so it needs a time to go out",
               "cron, at or every")
    if kind is not None:
        _kind_rules(m, kind, entry, report)
    if m.starts is not None and (kind not in ("digest", "social") or one == "on_publish"):
        report("starts", "starts sets where the first window of articles begins, so it only "
               "applies to digests (and timed social schedules)", None, Severity.WARNING)
    if m.intro is not None and ("{{" in m.intro or "{%" in m.intro):
        report("intro", "intro is plain text: {{ }} placeholders are shown as written",
               "plain text (placeholders work in subject)", Severity.WARNING)
    if kind is None:
        return None, problems
    schedule = Schedule(
        id=m.id, kind=kind, trigger=trigger, tz=ZoneInfo(m.timezone or tz_name),
        audience=tuple(m.audience), categories=tuple(m.categories), tags=tuple(m.tags),
        max_articles=m.max_articles, min_articles=m.min_articles, subject=m.subject,
        intro=m.intro,
        template=(m.template if m.template is None or "." in m.template
                  else f"{m.template}.html"),
        networks=tuple(m.networks) if m.networks is not None else None, enabled=m.enabled,
        max_lateness=m.max_lateness or top.max_lateness or DEFAULT_MAX_LATENESS,
        quiet_hours=m.quiet_hours or top.quiet_hours,
        starts=_aware(m.starts, ZoneInfo(m.timezone or tz_name)),
        line=doc.line(base), index=int(base[-1]),
        lines={k: line for k in entry.raw
               if isinstance(k, str) and (line := doc.line((*base, k))) is not None})
    return schedule, problems


Report = Callable[..., None]


def _aware(value: datetime | date | None, tz: ZoneInfo) -> datetime | None:
    """A date or a datetime as written, in the schedule's zone (a date: its midnight)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    if value.tzinfo:
        return value.astimezone(UTC)
    # As for `at:`: a time the clocks skip is the moment they change (not an
    # hour after it, as zoneinfo reads it), a repeated one the first time.
    # In UTC: an aware local time in the repeated hour equals no instant of
    # another zone (PEP 495), and windows are compared with UTC instants.
    return instants(value, tz, every_hour=False)[0]


def _trigger(m: ScheduleModel, tz_name: str, report: Report) -> Trigger:
    if m.cron is not None:
        spec = parse_cron(m.cron)
        if not spec.day_star and any(day >= 29 for day in spec.days):
            report("cron", f"{_q(m.cron)}: months without that day are skipped, not moved",
                   "\"last\" as the day of month for the last day of every month",
                   Severity.WARNING)
        if restricts_both_days(spec):
            report("cron", f"{_q(m.cron)} sets both a day of month and a weekday, so (as in "
                   "crontab) it fires on every day that matches EITHER one, e.g. "
                   "\"0 9 1-7 * mon\" is days 1-7 and every Monday",
                   "\"0 9 * * mon#1\" for only the first Monday of the month",
                   Severity.WARNING)
        cron = Cron(m.cron, normalise_cron(m.cron))
        probe = Schedule(id=m.id, kind="feeds", trigger=cron, tz=ZoneInfo(m.timezone or tz_name))
        if next_firing(probe, datetime(2000, 1, 1, tzinfo=UTC)) is None:
            report("cron", f"{_q(m.cron)} never fires: no month has that day", None)
        elif m.kind != "feeds" and (gap := _shortest_gap(probe)) is not None \
                and gap < MIN_EVERY:
            # The floor `every:` has, for what reaches people: a line like
            # "* * * * *" would otherwise mail or post every minute. A feeds
            # rebuild reaches nobody's inbox, so it may run every minute.
            report("cron", f"{_q(m.cron)} fires {format_duration(gap)} apart",
                   f"at least {format_duration(MIN_EVERY)} between firings, e.g. "
                   "\"*/5 * * * *\"")
        return cron
    if m.at is not None:
        tz = ZoneInfo(m.timezone or tz_name)
        if m.at.tzinfo:
            return At(m.at)
        # The same rules as a cron line's fixed time: a time the clocks skip
        # fires at the moment of the change, a repeated one the first time.
        when = instants(m.at, tz, every_hour=False)[0].astimezone(tz)
        if when.replace(tzinfo=None) != m.at:
            report("at", f"{m.at:%Y-%m-%d %H:%M} does not exist in {tz.key} (the clocks go "
                   f"forward then), so it fires at {when:%H:%M %Z}, when they change",
                   "a time that exists on that day", Severity.WARNING)
        elif len(both := instants(m.at, tz, every_hour=True)) == 2:
            report("at", f"{m.at:%Y-%m-%d %H:%M} happens twice in {tz.key} (the clocks go "
                   f"back then); it fires the first time, {when:%H:%M %Z}",
                   f"the time with its offset, {both[1].astimezone(tz).isoformat()}, for the "
                   "second one", Severity.WARNING)
        return At(when)
    if m.every is not None:
        return Every(m.every)
    return OnPublish(m.delay or OnPublish().delay)


def _shortest_gap(probe: Schedule) -> timedelta | None:
    """The shortest time between two firings over a week (a cron line's
    pattern repeats within one for any minute/hour/weekday choice)."""
    start = datetime(2001, 1, 1, tzinfo=UTC)
    fires: list[datetime] = []
    fire = next_firing(probe, start)
    while fire is not None and fire < start + timedelta(days=8) and len(fires) < 64:
        fires.append(fire)
        fire = next_firing(probe, fire)
    gaps = [b - a for a, b in pairwise(fires)]
    return min(gaps) if gaps else None


def _kind_rules(m: ScheduleModel, kind: str, entry: _Entry, report: Report) -> None:
    """Keys that mean nothing (or are missing) for this kind of schedule."""
    email = kind in ("digest", "article")
    if email and not m.audience and "audience" not in entry.broken:
        report("audience", f"{_a(kind)} schedule needs an audience", "a list of subscriber lists")
    if not email and m.audience:
        report("audience", f"{_a(kind)} schedule sends no email, so audience has no effect",
               None)
    for key in ("subject", "template"):
        if not email and getattr(m, key) is not None:
            report(key, f"{_a(kind)} schedule sends no email, so {key} has no effect", None)
    if m.networks is not None and kind != "social":
        report("networks", "networks only applies to social schedules", None)
    if kind not in ("digest", "social") and "max_articles" in m.model_fields_set:
        report("max_articles", f"max_articles has no effect on {_a(kind)} schedule", None)
    if kind != "digest" and "min_articles" in m.model_fields_set:
        report("min_articles", "min_articles only applies to digests", None)


def _a(word: str) -> str:
    """"a digest", "an article"."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"
