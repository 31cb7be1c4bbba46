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


def _syntax_error(exc: yaml.MarkedYAMLError) -> YamlSyntaxError:
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
        raise _syntax_error(exc) from None
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

    def build(n: yaml.Node, path: Path) -> Any:
        lines[path] = n.start_mark.line + 1
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
        if isinstance(n, yaml.SequenceNode):
            return [build(item, (*path, i)) for i, item in enumerate(n.value)]
        assert isinstance(n, yaml.ScalarNode)
        if n.style is None and _CLOCK.match(n.value):
            return n.value  # a clock time, not a base-60 integer
        try:
            return constructor.construct_object(n, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise YamlSyntaxError(str(exc.problem), n.start_mark.line + 1) from None
        except ValueError:
            return n.value  # e.g. a date with month 13: let validation say what it expected

    data = build(node, ())
    for path in [p for p in lines if "\0key" in p]:
        del lines[path]
    return LocatedYaml(data, lines, key_lines, tuple(duplicates))
