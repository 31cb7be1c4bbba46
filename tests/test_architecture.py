"""The shape of the code, read from its imports (see ARCHITECTURE.md).

Every package and top-level module of ``src/dispatch`` sits in one layer of
:data:`LAYERS`, lowest first. A module may import its own unit and the units
below it, never one above: stages get what they need from the pass context,
domain rules live below the CLI. Imports under ``if TYPE_CHECKING:`` are
annotations only and are not counted; imports inside functions are (they
run). Module-level imports form no cycle. Only the CLI prints or exits.
Value rules (URLs, control characters, addresses) are written once, in
``values/``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "dispatch"

LAYERS: tuple[str, ...] = (
    "errors",        # the one error tree
    "__init__",
    "sourcelines",   # line tracking for TOML, YAML and frontmatter
    "values",        # addresses, URLs, control characters
    "models",        # Article and the values that cross stages
    "sections",      # the settings registry
    "config",        # the one frozen Settings
    "secret",        # the site's secret key
    "tokens",        # the reader's signed tokens (confirm, preferences, forms)
    "dkim",
    "content",       # Markdown articles -> Article
    "store",         # SQLite / PostgreSQL, schema, migrations
    "stage",         # the pass context every stage gets
    "jobs",          # the job engine: lease, retry, the one delivery loop, transports
    "http_api",      # HTTP outcomes for any API transport
    "subscribers",
    "unsubscribe",
    "bounces",       # bounce and complaint reports -> subscriber status
    "outbox",        # email jobs
    "render",        # editions and messages
    "delivery",      # email transports and their channel of the loop
    "feeds",
    "social",
    "signup",        # double opt-in, preferences, erasure
    "digest",        # which articles a digest holds, and its edition id
    "pipeline",      # one pass: load, then every stage
    "schedule",      # the scheduler runs passes and firings
    "staff",         # staff accounts, sessions, test sends
    "web",
    "checks",        # dispatch check
    "reference",     # the README's settings reference
    "cli",           # the only printer and exiter
    "__main__",
)
"""Lowest first. A new package is one line here, in the place that says what it may use."""

PRINTING = {"cli", "__main__"}


@dataclass(frozen=True, slots=True)
class Import:
    module: str
    """The importing module (``dispatch.social.stage``)."""
    target: str
    line: int
    top_level: bool
    """At module level, so it runs when the module is imported."""


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def _is_main_guard(node: ast.If) -> bool:
    return ast.unparse(node.test).replace("'", '"') == '__name__ == "__main__"'


def _walk(node: ast.AST, top: bool) -> Iterator[tuple[ast.AST, bool]]:
    """Every node with whether it runs at import time, skipping TYPE_CHECKING
    blocks and ``if __name__ == "__main__":`` entry points."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and (_is_type_checking(child) or _is_main_guard(child)):
            for other in child.orelse:
                yield other, top
                yield from _walk(other, top)
            continue
        inner = top and not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef |
                                       ast.Lambda)
        yield child, inner
        yield from _walk(child, inner)


def sources() -> list[tuple[str, ast.Module, str]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        out.append((module_name(path), ast.parse(text), text))
    return out


SOURCES = sources()


def imports() -> list[Import]:
    found: list[Import] = []
    for module, tree, _text in SOURCES:
        package = module if module in _packages() else module.rpartition(".")[0]
        for node, top in _walk(tree, True):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    target = ".".join([*base, node.module] if node.module else base)
                else:
                    target = node.module or ""
                # "from dispatch.store import schema" imports the module schema.
                found.extend(Import(module, f"{target}.{a.name}" if f"{target}.{a.name}"
                                    in _modules() else target, node.lineno, top)
                             for a in node.names)
            elif isinstance(node, ast.Import):
                found.extend(Import(module, a.name, node.lineno, top) for a in node.names)
    return [i for i in found if i.target == "dispatch" or i.target.startswith("dispatch.")]


def _packages() -> set[str]:
    return {module_name(p) for p in SRC.rglob("__init__.py")}


def _modules() -> set[str]:
    return {module for module, _tree, _text in SOURCES}


IMPORTS = imports()


def test_every_unit_has_a_layer() -> None:
    units = {unit(module) for module, _tree, _text in SOURCES}
    missing = sorted(units - set(LAYERS))
    assert not missing, (f"add {missing} to LAYERS in tests/test_architecture.py (and the "
                         "layer diagram of ARCHITECTURE.md), where it belongs")


def test_nothing_imports_a_higher_layer() -> None:
    rank = {name: n for n, name in enumerate(LAYERS)}
    upward = [f"{i.module} (line {i.line}) imports {i.target}: {unit(i.target)} is above "
              f"{unit(i.module)}" for i in IMPORTS
              if unit(i.target) in rank and unit(i.module) in rank
              and rank[unit(i.target)] > rank[unit(i.module)]]
    assert upward == []


def test_module_level_imports_form_no_cycle() -> None:
    modules = {module for module, _tree, _text in SOURCES}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for i in IMPORTS:
        if i.top_level and i.module != i.target:
            target = i.target
            while target not in modules and "." in target:  # "from pkg.mod import name"
                target = target.rpartition(".")[0]
            if target in modules and target != i.module:
                graph[i.module].add(target)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == []


def test_the_stages_do_not_import_the_pipeline() -> None:
    """The pass context is below the stages (dispatch.stage); the pipeline above."""
    stages = ("dispatch.subscribers.sync", "dispatch.feeds.stage", "dispatch.social.stage",
              "dispatch.delivery.stage")
    assert [i for i in IMPORTS if i.module in stages and i.target == "dispatch.pipeline"] == []


_OUTPUT = {"print", "exit", "quit"}
_OUTPUT_ATTR = {"sys.exit", "os._exit", "click.echo", "click.secho"}


def test_only_the_cli_prints_or_exits() -> None:
    found = []
    for module, tree, _text in SOURCES:
        if unit(module) in PRINTING:
            continue
        for node, _top in _walk(tree, True):
            if isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                if name in _OUTPUT or name in _OUTPUT_ATTR or name.endswith("console.print"):
                    found.append(f"{module}:{node.lineno}: {name}()")
            elif isinstance(node, ast.Raise) and node.exc is not None and \
                    ast.unparse(node.exc).startswith("SystemExit"):
                found.append(f"{module}:{node.lineno}: raise SystemExit")
    assert found == []


# A string that spells a URL check (anchored: "is this value a URL?") or a
# control-character class. (Finding links inside a post's text is a network's
# counting rule, in social/count.py and social/compose.py.)
_URL_RULE = re.compile(r"\^https?\??://")
_CONTROL_CLASS = re.compile(r"\\x00-|\\x1f|\\x7f|\\x85|\x00-|\x1f|\x7f-")


@pytest.mark.parametrize(("rule", "pattern", "home"), [
    ("URL", _URL_RULE, "values/urls.py"),
    ("control-character", _CONTROL_CLASS, "values/controls.py"),
])
def test_value_rules_are_written_once(rule: str, pattern: re.Pattern[str], home: str) -> None:
    """Regular expressions for URLs and control characters live in values/;
    everything else uses them (they used to disagree with each other)."""
    found = []
    for module, tree, text in SOURCES:
        if module.startswith("dispatch.values") or text.startswith('"""GENERATED'):
            continue  # (generated tables copy a library's own expressions)
        for node, _top in _walk(tree, True):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    pattern.search(node.value) and not _is_docstring_like(node.value):
                found.append(f"{module}:{node.lineno}: {node.value[:60]!r}")
    assert found == [], f"use dispatch/{home} instead of a {rule} rule of your own"


def _is_docstring_like(value: str) -> bool:
    # Prose that mentions a scheme ("an http:// or https:// URL") is not a rule.
    return " " in value.strip() and not any(c in value for c in "[]^$\\")


# Names of notes kept outside the repository: the code and its documents must
# give their reasons themselves (spelt as patterns so this file does not match).
_OUTSIDE = re.compile(r"FIELD[- _]?NOTES|\binvariants?\s+\d|\bDESIGN\.md\b", re.IGNORECASE)
REPO = SRC.parent.parent


def test_nothing_refers_to_documents_outside_the_repository() -> None:
    files = [*sorted((REPO / "src").rglob("*.py")), *sorted((REPO / "tests").rglob("*.py")),
             *sorted((REPO / "bench").rglob("*")), REPO / "README.md",
             REPO / "ARCHITECTURE.md", *sorted((REPO / "src").rglob("*.html")),
             *sorted((REPO / "templates").rglob("*"))]
    found = []
    for path in files:
        if not path.is_file() or path.suffix in {".pyc", ".png", ".jpg"}:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if _OUTSIDE.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:80]}")
    assert found == []
