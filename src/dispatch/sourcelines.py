"""Where each key of a settings file was written, for ``FILE:LINE`` messages.

TOML and YAML parsers hand back plain data without positions, so every
error would otherwise be reported against the whole file. A
:class:`SourceLines` maps a key path (``("social", "x", "limit")``, or
``("schedules", 0, "at")`` in YAML) to the line of its key and of its value;
:meth:`SourceLines.line` answers with the nearest written ancestor when the
exact key is not in the file (a missing key is reported at its table).

``dispatch.toml`` is scanned here (:func:`toml_lines`); ``schedules.yaml``
and article frontmatter fill one from PyYAML's node marks.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class SourceLines:
    values: Mapping[KeyPath, int] = field(default_factory=dict)
    """1-based line where each value (or table) starts."""
    keys: Mapping[KeyPath, int] = field(default_factory=dict)
    """1-based line of each key (where an unknown key is reported)."""

    def line(self, path: KeyPath) -> int | None:
        """The line of ``path``'s key, else of the nearest written ancestor."""
        if path in self.keys:
            return self.keys[path]
        for end in range(len(path), -1, -1):
            if path[:end] in self.values:
                return self.values[path[:end]]
        return None

    def dotted(self, key: str) -> int | None:
        """:meth:`line` for ``"a.b.c"`` (TOML keys without dots of their own)."""
        return self.line(tuple(key.split(".")))


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """The closest of ``choices`` to a misspelt ``word``, if one is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def expected_one_of(word: str, choices: Iterable[str]) -> str:
    """What to say about a name that is not one of ``choices``: the closest
    one as a suggestion, or the whole list."""
    names = list(choices)
    close = suggest(word, names)
    return f"did you mean {close!r}?" if close else "one of " + ", ".join(names)


def known_name(value: str, choices: Iterable[str]) -> str:
    """A validator body: ``value`` if it is one of ``choices``, else ValueError."""
    names = list(choices)
    if value not in names:
        raise ValueError(expected_one_of(value, names))
    return value


# One key segment: bare, "basic" or 'literal' (escapes inside are rare in
# settings keys and only matter for the line, never for the value).
_SEGMENT = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_SEGMENT}(?:\s*\.\s*{_SEGMENT})*"
_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED})\s*\]\]?")
_ASSIGN = re.compile(rf"^\s*({_DOTTED})\s*=")


def _split(dotted: str) -> tuple[str, ...]:
    parts = re.findall(_SEGMENT, dotted)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


def _strip_strings(line: str) -> str:
    """The line with string contents removed, so brackets inside them are not counted."""
    return re.sub(r""""(?:[^"\\]|\\.)*"|'[^']*'""", '""', line).split("#", 1)[0]


def toml_lines(text: str) -> SourceLines:
    """Scan TOML text for table headers and ``key =`` lines.

    Multi-line strings and arrays are stepped over so that a ``x = 1`` inside
    them is not taken for a key. A table array ``[[a]]`` numbers its tables
    0, 1, … in the path, as the parsed data does.
    """
    values: dict[KeyPath, int] = {}
    keys: dict[KeyPath, int] = {}
    table: KeyPath = ()
    arrays: dict[KeyPath, int] = {}
    depth = 0  # open [ and { of a value spanning lines
    quote: str | None = None  # the delimiter of an open multi-line string
    for number, line in enumerate(text.splitlines(), start=1):
        if quote is not None:
            if line.count(quote) % 2 == 1:
                quote = None
            continue
        if depth > 0:
            stripped = _strip_strings(line)
            depth += stripped.count("[") + stripped.count("{")
            depth -= stripped.count("]") + stripped.count("}")
            continue
        header = _HEADER.match(line)
        if header:
            path: KeyPath = _split(header.group(2))
            if header.group(1) == "[[":
                index = arrays.get(path, -1) + 1
                arrays[path] = index
                keys.setdefault(path, number)
                values.setdefault(path, number)
                path = (*path, index)
            table = path
            keys.setdefault(table, number)
            values.setdefault(table, number)
            continue
        assign = _ASSIGN.match(line)
        if not assign:
            continue
        path = (*table, *_split(assign.group(1)))
        keys.setdefault(path, number)
        values.setdefault(path, number)
        rest = line[assign.end():]
        for mark in ('"""', "'''"):
            if rest.lstrip().startswith(mark) and rest.count(mark) == 1:
                quote = mark
        if quote is None:
            stripped = _strip_strings(rest)
            depth = max(0, stripped.count("[") + stripped.count("{")
                        - stripped.count("]") - stripped.count("}"))
    return SourceLines(values, keys)
