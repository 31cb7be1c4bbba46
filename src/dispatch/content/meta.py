"""Frontmatter: split with python-frontmatter, read with line numbers, validate.

Each field is checked on its own so one file reports every mistake at once,
each with the line of the key that holds it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import frontmatter
import yaml

from dispatch.errors import Problem, Severity
from dispatch.sourcelines import SourceLines
from dispatch.values import controls, urls

KNOWN_KEYS = (
    "title", "date", "updated", "summary", "category", "tags", "author", "status", "slug",
    "image", "image_alt", "canonical_url", "takeaway", "social", "email",
)
SLUG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Bidirectional embeddings, overrides and isolates: invisible, they reorder
# what follows them, so a Subject or a feed title can read differently from
# what was typed ("Trojan Source"). The class is values/controls.BIDI.
BIDI_RE = controls.BIDI
BIDI_FIELDS = ("title", "summary", "category", "author", "image_alt", "takeaway")
"""Frontmatter fields that reach email headers, feeds or posts as text."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that leaves timestamps as text, so dates are parsed by us
    (with the site's timezone for naive ones) and errors can say why."""


_NO_TIMESTAMPS = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_Loader.yaml_implicit_resolvers = _NO_TIMESTAMPS

_FastLoader: type[Any] | None = None
"""The same on libyaml's parser, when PyYAML was built with it: the pure
Python parser was a third of a cold load's time per article. libyaml refuses
some valid YAML (a ``\\U0001xxxx`` escape), so any error it raises is
checked again by the pure parser, whose answer (and wording) stands."""
if hasattr(yaml, "CSafeLoader"):
    class _CLoader(yaml.CSafeLoader):
        pass

    _CLoader.yaml_implicit_resolvers = _NO_TIMESTAMPS
    _FastLoader = _CLoader


def _compose(fm_text: str) -> tuple[Any, Any]:
    """(root node, data) of the frontmatter; ``yaml.YAMLError`` if invalid."""
    for kind in (_FastLoader, _Loader):
        if kind is None:
            continue
        loader = kind(fm_text)
        try:
            node = loader.get_single_node()
            return node, (loader.construct_document(node) if node is not None else {})
        except yaml.YAMLError:
            if kind is _Loader:
                raise
        finally:
            loader.dispose()
    raise AssertionError("unreachable: the pure parser answers or raises")


_HANDLER = frontmatter.default_handlers.YAMLHandler()


@dataclass(frozen=True, slots=True)
class Split:
    metadata: dict[str, Any]
    key_lines: dict[str, int]
    body: str
    body_line: int
    """1-based file line where the body starts."""
    repeated: tuple[tuple[str, int], ...] = ()
    """Keys written more than once, with the line of each repeat (YAML keeps the last)."""


class FrontmatterError(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def split(text: str, path: str) -> Split:
    if not _HANDLER.detect(text):
        raise FrontmatterError(Problem(path, "no frontmatter", 1, None,
                                       "a '---' line, YAML fields, and another '---' line"))
    try:
        fm_text, body = _HANDLER.split(text)
    except ValueError:
        raise FrontmatterError(Problem(path, "frontmatter is not closed", 1, None,
                                       "a second '---' line after the fields")) from None
    body_start = len(text) - len(body)
    body_line = text.count("\n", 0, body_start) + 1
    # fm_text starts with the newline that ends the opening '---' line, so a
    # YAML line index is also the file's 1-based line number minus one.
    try:
        node, data = _compose(fm_text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        reason = getattr(exc, "problem", None) or str(exc)
        raise FrontmatterError(Problem(path, f"YAML syntax error: {reason}", line, None,
                                       "valid YAML 'key: value' lines")) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FrontmatterError(Problem(path, "frontmatter is not a set of 'key: value' fields",
                                       2, None, "a YAML mapping"))
    key_lines: dict[str, int] = {}
    repeated: list[tuple[str, int]] = []
    if isinstance(node, yaml.MappingNode):
        for key_node, _value in node.value:
            key = str(key_node.value)
            if key in key_lines:
                repeated.append((key, key_node.start_mark.line + 1))
            key_lines[key] = key_node.start_mark.line + 1
    return Split(data, key_lines, body, body_line, tuple(repeated))


@dataclass(frozen=True, slots=True)
class Meta:
    title: str
    date: datetime
    updated: datetime | None
    summary: str | None
    category: str | None
    tags: tuple[str, ...]
    author: str | None
    status: str
    slug: str | None
    image: str | None
    image_alt: str | None
    canonical_url: str | None
    takeaway: str | None
    social: tuple[tuple[str, str], ...]
    email: bool


EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, 23, 59, 59, tzinfo=UTC)
"""Article dates must lie in this range (UTC). A UTC offset is under a day, so
any date in it can be shown in any timezone; a date within a day of the
calendar's ends could not be (Python's datetime stops at years 1 and 9999),
and would fail in every feed, email and store write that converts it."""
DATE_RANGE = "a date between 0001-01-02 and 9999-12-30"


class DateOutOfRange(ValueError):
    """A date that parses but cannot be converted to UTC or another zone."""


def parse_datetime(value: Any, tz: ZoneInfo) -> datetime | None:
    """The frontmatter value as an aware datetime; None when it is not a date.

    Raises :class:`DateOutOfRange` for a real date too close to the ends of
    the calendar to be converted between timezones.
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time())
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    try:
        in_utc = parsed.astimezone(UTC)
        parsed.astimezone(tz)
    except (OverflowError, ValueError):
        raise DateOutOfRange(value) from None
    if not EARLIEST <= in_utc <= LATEST:
        raise DateOutOfRange(value)
    return parsed


def _bidi_warnings(data: Mapping[str, Any], path: str,
                   line: Callable[[str], int]) -> list[Problem]:
    """A warning for each text field holding a bidirectional control."""
    found: list[Problem] = []
    values: list[tuple[str, Any]] = [(key, data.get(key)) for key in BIDI_FIELDS]
    tags = data.get("tags")
    values += [("tags", t) for t in (tags if isinstance(tags, list) else [tags])]
    social = data.get("social")
    if isinstance(social, Mapping):
        values += [("social", v) for v in social.values()]
    for key, value in values:
        if isinstance(value, str) and (match := BIDI_RE.search(value)):
            found.append(Problem(
                path, f"invisible bidirectional control U+{ord(match.group()):04X} would reach "
                "email subjects and feeds and can make the text read in another order",
                line(key), key, "plain text (remove the character)", Severity.WARNING))
    return found


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validate(split_: Split, path: str, tz: ZoneInfo) -> tuple[Meta | None, list[Problem]]:
    data = split_.metadata
    problems: list[Problem] = []

    located = SourceLines(keys={(k,): n for k, n in split_.key_lines.items()})

    def line(key: str) -> int:
        return located.line((key,)) or 1

    def error(key: str, message: str, expected: str | None = None) -> None:
        problems.append(Problem(path, message, line(key), key, expected))

    def optional_str(key: str) -> str | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            error(key, f"{value!r} is not text", "a string")
            return None
        if not isinstance(value, str):
            error(key, f"{value!r} is a number, not text", "a string (quote it)")
            return None
        return value.strip() or None

    def date_field(key: str, raw: Any, expected: str) -> datetime | None:
        try:
            parsed = parse_datetime(raw, tz)
        except DateOutOfRange:
            error(key, f"{_shown(raw)} is too close to the ends of the calendar to be "
                  "shown in UTC and the site's timezone", DATE_RANGE)
            return None
        if parsed is None:
            error(key, f"{_shown(raw)} is not a date", expected)
        return parsed

    for key, at in split_.repeated:
        # PyYAML silently keeps the last value; a writer who pasted a second
        # `title:` should know which one is used.
        problems.append(Problem(path, f"{key!r} is written more than once; this last one is used",
                                at, key, "each key once", Severity.WARNING))
    for key in data:
        if key not in KNOWN_KEYS:
            close = difflib.get_close_matches(str(key), KNOWN_KEYS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else ", ".join(KNOWN_KEYS)
            problems.append(Problem(path, f"unknown key {key!r} is ignored", line(str(key)),
                                    str(key), hint, Severity.WARNING))

    title = data.get("title")
    if title is None or (isinstance(title, str) and not title.strip()):
        error("title", "missing", "a title: line")
    elif not isinstance(title, str):
        error("title", f"{title!r} is not text", "a string")
    elif not controls.is_one_line(title):
        error("title", "contains a line break or control character, which would break "
              "email headers", "a title on one line")

    raw_date = data.get("date")
    published: datetime | None = None
    if raw_date is None:
        error("date", "missing", "an ISO 8601 date such as 2026-03-01 or 2026-03-01T09:00+01:00")
    else:
        published = date_field("date", raw_date,
                               "ISO 8601, such as 2026-03-01 or 2026-03-01T09:00+01:00")
    updated: datetime | None = None
    if data.get("updated") is not None:
        updated = date_field("updated", data["updated"], "ISO 8601")
    if updated is not None and published is not None and updated < published:
        # Feeds and the archive would show an article changed before it
        # existed: usually the two dates were swapped or a year mistyped.
        problems.append(Problem(path, f"{data['updated']} is earlier than the date "
                                f"{data['date']}", line("updated"), "updated",
                                "the date of the last change, on or after date",
                                Severity.WARNING))

    raw_tags = data.get("tags")
    tags: tuple[str, ...] = ()
    if raw_tags is None:
        pass
    elif isinstance(raw_tags, str):
        tags = tuple(t.strip() for t in raw_tags.split(",") if t.strip())
    elif isinstance(raw_tags, list) and all(isinstance(t, str) for t in raw_tags):
        tags = tuple(t.strip() for t in raw_tags if t.strip())
    else:
        error("tags", f"{raw_tags!r} is not a list of words", "a list such as [sleep, heart] "
              "or a comma-separated string")

    status = data.get("status", "published")
    if status not in ("draft", "published"):
        error("status", f"{status!r} is not a status", "draft or published")
        status = "draft"

    slug = optional_str("slug")
    if slug is not None and not SLUG_RE.match(slug):
        error("slug", f"{slug!r} is not a safe slug: it could escape the output folder or "
              "break URLs", "letters, digits, '-', '_' and '.', not starting with '.'")
        slug = None

    canonical = optional_str("canonical_url")
    if canonical is not None and not urls.is_absolute(canonical):
        error("canonical_url", f"{canonical!r} is not an absolute URL", "https://…")
        canonical = None

    raw_social = data.get("social")
    social: tuple[tuple[str, str], ...] = ()
    if raw_social is not None and not isinstance(raw_social, Mapping):
        error("social", "is not a mapping of network to text",
              "for example:  social: {mastodon: 'text'}")
    elif raw_social is not None:
        kept: list[tuple[str, str]] = []
        for name, text in raw_social.items():
            if isinstance(text, str):
                # A name YAML read as a number or yes/no is still a name the
                # writer typed: the social checks say whether a network has it.
                kept.append((str(name).lower(), text.strip()))
            else:
                error("social", f"the override for {str(name)!r} is {_shown(text)}, not "
                      "the post's text", "for example:  social: {mastodon: 'text'}")
        social = tuple(sorted(kept))

    email = data.get("email", True)
    if not isinstance(email, bool):
        error("email", f"{email!r} is not true or false", "true or false")
        email = True

    fields = {key: optional_str(key) for key in
              ("summary", "category", "author", "image", "image_alt", "takeaway")}
    image = fields["image"]
    scheme = image.strip().partition(":")[0].lower() if image and ":" in image else ""
    if image is not None and scheme and re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme) and \
            scheme not in ("http", "https"):
        # The body's links go through the sanitiser; the hero image goes
        # straight into feeds (enclosure, JSON image) and the email's <img>.
        error("image", f"{image!r} is not a web address or a path on the site",
              "an https://… URL or a path such as /images/photo.jpg")
    problems.extend(_bidi_warnings(data, path, line))

    if any(p.is_error for p in problems) or published is None or not isinstance(title, str):
        return None, problems
    return Meta(
        title=title.strip(), date=published, updated=updated, summary=fields["summary"],
        category=fields["category"], tags=tags, author=fields["author"], status=str(status),
        slug=slug, image=fields["image"], image_alt=fields["image_alt"],
        canonical_url=canonical, takeaway=fields["takeaway"], social=social, email=email,
    ), problems
