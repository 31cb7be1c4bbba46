"""YAML that remembers where every value was written.

PyYAML's composed node tree carries a mark per node; we build the plain data
from it ourselves so that every error can point at ``schedules.yaml:LINE``.
Building it ourselves also lets us catch what ``yaml.safe_load`` hides: a key
written twice in one mapping (YAML keeps the last one silently) and YAML 1.1's
base-60 integers, which would turn ``21:00`` into ``1260``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from dispatch.sourcelines import SourceLines

Path = tuple[str | int, ...]

_CLOCK = re.compile(r"^\d{1,2}:\d{2}(:\d{2})?$")

# A schedules file holds hundreds of values, not hundreds of thousands: past
# this many, anchors (&a) and aliases (*a) are being nested to multiply the
# text (a "billion laughs" file), which would hold a command for minutes.
_MAX_VALUES = 100_000


@dataclass(frozen=True)
class LocatedYaml:
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    """1-based line of each value, keyed by its path of keys and indexes."""
    key_lines: dict[Path, int] = field(default_factory=dict)
    """1-based line of each mapping key (where an unknown key is reported)."""
    duplicates: tuple[tuple[Path, int], ...] = ()
    """Keys written twice in one mapping, with the line of the repeat."""

    def line(self, path: Path) -> int | None:
        """The line of ``path``, or of its nearest written ancestor."""
        return SourceLines(self.lines, self.key_lines).line(path)


class YamlSyntaxError(Exception):
    def __init__(self, message: str, line: int | None, expected: str | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.expected = expected


# Constructs that open on one line and must be closed later: when one is
# left open, PyYAML's problem mark is wherever it gave up (often the next
# entry), but the mistake is where it opened.
_OPENERS = {"while parsing a flow sequence": ("[", "a closing ]"),
            "while parsing a flow mapping": ("{", "a closing }"),
            "while scanning a quoted scalar": ("quote", "the same quote mark at the end")}


_NO_SPACE = re.compile(r"^\s*(?:-\s+)?([A-Za-z_][\w-]*):([^\s/].*)$")
_ITEM = re.compile(r"^(\s*)-\s")
_ID = re.compile(r"^\s*(?:-\s+)?id:\s*['\"]?([^'\"#\s]+)")
_INDENTATION = ("mapping values are not allowed here", "expected <block end>",
                "did not find expected key", "did not find expected '-'")


def _plain_words(exc: yaml.MarkedYAMLError, lines: list[str]) -> YamlSyntaxError | None:
    """The three mistakes staff make most, said in their words.

    PyYAML reports where it gave up, often the line *after* the mistake, in
    parser terms ("could not find expected ':'"); we look back from there.
    """
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return None
    at = mark.line  # 0-based
    if "'\\t'" in (exc.problem or "") or "\t" in (exc.problem or ""):
        line = lines[at] if at < len(lines) else ""
        where = "for indentation" if line[:len(line) - len(line.lstrip())].count("\t") else \
            "between a key and its value"
        return YamlSyntaxError(f"this line has a tab: use spaces, not a tab, {where}", at + 1,
                               "spaces only (set your editor to insert spaces for Tab)")
    colon = ("could not find expected ':'", "mapping values are not allowed here")
    for number in range(at, max(at - 3, -1), -1) if (exc.problem or "") in colon else ():
        found = _NO_SPACE.match(lines[number]) if number < len(lines) else None
        if found:
            key, value = found.groups()
            return YamlSyntaxError(
                f"\"{key}:{value.strip()}\" needs a space after the colon", number + 1,
                f"\"{key}: {value.strip()}\"")
    if any(p in (exc.problem or "") for p in _INDENTATION):
        entry = _entry_of(lines, at)
        broke = f", which breaks {entry}" if entry else ""
        return YamlSyntaxError(
            f"this line is indented differently from the lines above it{broke}", at + 1,
            "each key of a schedule lined up under the one above it (same number of spaces)")
    return None


def _entry_of(lines: list[str], at: int) -> str:
    """"schedule \"weekly\" (the entry starting on line 12)" for a 0-based line."""
    for number in range(min(at, len(lines) - 1), -1, -1):
        item = _ITEM.match(lines[number])
        if item is None:
            continue
        name = None
        for look in range(number, min(at + 1, len(lines))):
            found = _ID.match(lines[look])
            if found and (look == number or not _ITEM.match(lines[look])):
                name = found.group(1)
                break
        shown = f"schedule \"{name}\"" if name else "the schedule"
        return f"{shown} (the entry starting on line {number + 1})"
    return ""


def _syntax_error(exc: yaml.MarkedYAMLError, lines: list[str]) -> YamlSyntaxError:
    plain = _plain_words(exc, lines)
    if plain is not None:
        return plain
    problem, opened = exc.problem_mark, exc.context_mark
    opener = _OPENERS.get(exc.context or "")
    if opener is not None and opened is not None:
        symbol, expected = opener
        gave_up = f" (YAML gave up on line {problem.line + 1}: {exc.problem})" if problem else ""
        return YamlSyntaxError(f"the {symbol} opened on this line is never closed{gave_up}",
                               opened.line + 1, expected)
    mark = problem or opened
    message = " ".join(p for p in (exc.problem, exc.context and f"({exc.context})") if p)
    return YamlSyntaxError(message or str(exc), mark.line + 1 if mark else None)


def load_located(text: str) -> LocatedYaml:
    """Parse one YAML document; raise :class:`YamlSyntaxError` with its line."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, text.splitlines()) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(str(exc), None) from None
    finally:
        loader.dispose()
    if node is None:
        return LocatedYaml(None)
    lines: dict[Path, int] = {}
    key_lines: dict[Path, int] = {}
    duplicates: list[tuple[Path, int]] = []
    constructor = yaml.SafeLoader("")
    inside: set[int] = set()  # ids of the collections being built around this value
    built = 0

    def build(n: yaml.Node, path: Path) -> Any:
        nonlocal built
        built += 1
        if built > _MAX_VALUES:
            raise YamlSyntaxError(
                f"the file expands to more than {_MAX_VALUES:,} values (anchors and aliases "
                "repeated inside each other)", n.start_mark.line + 1,
                "each schedule written out, or an alias (*name) used a few times")
        if id(n) in inside:
            # An alias inside the value it names would build forever.
            raise YamlSyntaxError("an alias (*name) is used inside the value it names",
                                  n.start_mark.line + 1, "an alias of a value defined earlier")
        lines[path] = n.start_mark.line + 1
        if isinstance(n, yaml.CollectionNode):
            inside.add(id(n))
            try:
                return build_collection(n, path)
            finally:
                inside.discard(id(n))
        assert isinstance(n, yaml.ScalarNode)
        if n.style is None and _CLOCK.match(n.value):
            return n.value  # a clock time, not a base-60 integer
        try:
            return constructor.construct_object(n, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise YamlSyntaxError(str(exc.problem), n.start_mark.line + 1) from None
        except ValueError:
            return n.value  # e.g. a date with month 13: let validation say what it expected

    def build_collection(n: yaml.CollectionNode, path: Path) -> Any:
        if isinstance(n, yaml.MappingNode):
            constructor.flatten_mapping(n)  # resolve YAML merge keys (<<)
            out: dict[Any, Any] = {}
            for key_node, value_node in n.value:
                key = build(key_node, (*path, "\0key"))
                key = key if isinstance(key, str | int) else str(key)
                if key in out:
                    duplicates.append(((*path, key), key_node.start_mark.line + 1))
                key_lines[(*path, key)] = key_node.start_mark.line + 1
                out[key] = build(value_node, (*path, key))
            return out
        return [build(item, (*path, i)) for i, item in enumerate(n.value)]

    data = build(node, ())
    for path in [p for p in lines if "\0key" in p]:
        del lines[path]
    return LocatedYaml(data, lines, key_lines, tuple(duplicates))
