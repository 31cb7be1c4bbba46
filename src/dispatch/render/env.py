"""The Jinja2 environments: email templates, and subject lines.

A site's ``templates/email/`` comes first and the packaged defaults second,
so overriding one template means copying that one file. Undefined variables
are errors (StrictUndefined): a typo in a template must not send an email
with a hole in it.
"""

from __future__ import annotations

import functools
import re
import string
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import ImmutableSandboxedEnvironment

from dispatch.config import Settings
from dispatch.errors import Problem, TemplateError
from dispatch.render.slots import SlotMisuse, finalize
from dispatch.render.text import label_url, wrap

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "templates" / "email"


def site_dir(settings: Settings) -> Path:
    return settings.templates_dir / "email"


@functools.lru_cache(maxsize=16)
def _environment(site_templates: str) -> jinja2.Environment:
    loader = jinja2.ChoiceLoader([
        jinja2.FileSystemLoader(site_templates),
        jinja2.FileSystemLoader(str(PACKAGE_DIR)),
    ])
    env = jinja2.Environment(
        loader=loader,
        # .txt templates build the plain-text part: escaping there would
        # turn "R&D" into "R&amp;D" in the reader's inbox.
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "htm", "xml"),
                                            default_for_string=True, default=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        # Recipient values are Slots: printing them is the only thing a
        # template can do with them (see dispatch.render.slots).
        finalize=finalize,
    )
    env.filters["wrap"] = wrap
    env.filters["label_url"] = label_url
    return env


def environment(settings: Settings) -> jinja2.Environment:
    return _environment(str(site_dir(settings)))


# RFC 5322's limit for one header line: a subject longer than that is a
# mistake, and rendering it must not first build something huge.
MAX_SUBJECT = 998
MAX_PIECE = 100_000
"""The most characters (and list items) one step of a subject template may
build. Values the template is given (an article's summary, say) may be
longer; what the template makes of them may not, so that a line such as
``{% set ns.s = ns.s ~ ns.s %}`` in a loop, or ``|tojson`` applied twenty
times, is refused after a bounded amount of work instead of exhausting
memory."""


class _SubjectEnvironment(ImmutableSandboxedEnvironment):
    """A sandbox for subject lines that refuses to build what no subject can use.

    Immutable: a subject has no reason to grow a list (``a.append``), and a
    list grown in a silent loop would escape every check below. Each step
    that could make far more than it was given is checked before it runs
    (repetition, joining, replacing, padding and format widths); every
    other filter and method result is checked after, which bounds memory
    too, as none of them multiplies its input by more than a few times.
    """

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any,
                   right: Any) -> Any:
        if operator == "*" and (_too_long(left, right) or _too_long(right, left)):
            raise jinja2.exceptions.SecurityError(
                f"the result would be longer than a subject can be ({MAX_SUBJECT} characters)")
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_SUBJECT:
            raise jinja2.exceptions.SecurityError(f"the power {right} is too large")
        if operator == "+" and isinstance(left, str | list | tuple) and \
                isinstance(right, str | list | tuple):
            _refuse_size(_weight(left) + _weight(right))
        if operator == "%" and isinstance(left, str):
            _refuse_printf_widths(left, right)
        return _checked(super().call_binop(context, operator, left, right))

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any,
             **kwargs: Any) -> Any:
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            name = getattr(__obj, "__name__", "")
            if name in _PADDING:
                # "x".ljust(100000000), "7".zfill(…): refused before the
                # string is built. Only the padding methods: elsewhere a big
                # number is an ordinary argument.
                _refuse_widths(args, kwargs)
            elif name == "replace":
                _refuse_replace(owner, *args[:3])
            elif name == "join" and args:
                args = (_joinable(args[0], owner),)
        return _checked(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template: str = value.__self__
        mapping = value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            values = [*args, *kwargs.values()]
            if mapping and args and isinstance(args[0], dict):
                values += list(args[0].values())
            _refuse_format_widths(template, values)
            text = wrapped(*args, **kwargs)
            _checked(text)
            return text
        return functools.update_wrapper(checked, value)

    def bounded_concat(self, pieces: tuple[Any, ...]) -> str:
        """``a ~ b``: the pieces as text, refused before joining when too long."""
        return "".join(_joinable(pieces, ""))


class _SubjectCodeGenerator(CodeGenerator):
    """Compiles ``~`` to the environment's bounded join (Jinja's own join is
    a module function the sandbox cannot intercept)."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


_SubjectEnvironment.code_generator_class = _SubjectCodeGenerator

_PADDING = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


def _too_long(sequence: Any, times: Any) -> bool:
    return (isinstance(sequence, str | list | tuple) and isinstance(times, int)
            and _weight(sequence) * times > MAX_SUBJECT)


def _weight(value: Any) -> int:
    """Characters and items in ``value``, nested lists counted in full (a list
    of 900 references to one 900-item list prints 810,000 items), counted
    only until past :data:`MAX_PIECE`."""
    seen: dict[int, int] = {}

    def walk(item: Any) -> int:
        if isinstance(item, str):
            return len(item)
        if not isinstance(item, list | tuple | dict):
            return 1
        key = id(item)
        if key in seen:
            return seen[key]
        seen[key] = 1  # a list that holds itself is counted once
        total = len(item)
        for part in (item.items() if isinstance(item, dict) else item):
            total += walk(part)
            if total > MAX_PIECE:
                break
        seen[key] = total
        return total

    return walk(value)


def _refuse_size(size: int) -> None:
    if size > MAX_PIECE:
        raise jinja2.exceptions.SecurityError(
            f"a value of more than {MAX_PIECE:,} characters is more than a subject line can "
            f"use ({MAX_SUBJECT} characters)")


def _checked(value: Any) -> Any:
    if isinstance(value, str | list | tuple | dict):
        _refuse_size(_weight(value))
    return value


def _big(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value > MAX_SUBJECT
    if isinstance(value, str):
        return any(int(digits) > MAX_SUBJECT for digits in re.findall(r"\d+", value))
    return False


def _refuse_widths(args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and _big(value):
            raise jinja2.exceptions.SecurityError(
                f"{value} is more than a subject can hold ({MAX_SUBJECT} characters)")


# A printf conversion: "%", an optional (key), flags, width, precision.
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?")


def _refuse_printf_widths(template: str, values: Any) -> None:
    """``"%100000000d" % 1`` and ``"%*d" % (100000000, 1)``: a width or
    precision no subject can have, refused before formatting."""
    starred = False
    for width, precision in _PRINTF.findall(template):
        for number in (width, precision):
            if number == "*":
                starred = True
            elif number and int(number) > MAX_SUBJECT:
                raise jinja2.exceptions.SecurityError(
                    f"the width {number} in {template[:40]!r} is more than a subject can hold")
    if starred:
        _refuse_widths(list(values) if isinstance(values, tuple) else [values], {})


def _refuse_format_widths(template: str, values: list[Any]) -> None:
    """``"{:>100000000}".format(x)``, and a width taken from an argument
    (``"{0:{1}}".format(x, 100000000)``), refused before formatting."""
    nested = False
    for _, _, spec, _ in string.Formatter().parse(template):
        if not spec:
            continue
        if "{" in spec:
            nested = True
        elif _big(spec):
            raise jinja2.exceptions.SecurityError(
                f"the format {spec!r} asks for more than a subject can hold")
    if nested and any(_big(v) for v in values):
        raise jinja2.exceptions.SecurityError(
            "a width taken from the arguments is more than a subject can hold")


def _refuse_replace(text: Any, old: Any = None, new: Any = None, count: Any = -1) -> None:
    if not (isinstance(old, str) and isinstance(new, str)):
        return
    text = str(text)
    hits = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        hits = min(hits, count)
    _refuse_size(len(text) + hits * (len(new) - len(old)))


def _joinable(items: Any, separator: str) -> list[str]:
    """The pieces of a join, as text, refused before joining when too long."""
    texts = [str(item) for item in items]
    _refuse_size(sum(map(len, texts)) + len(separator) * max(0, len(texts) - 1))
    return texts


def _guarded_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """A built-in filter with the subject checks: ``center``/``indent`` widths,
    ``replace``/``join``/``format`` sizes before, every result after.
    (Filters are called directly, not through the sandbox's ``call``; the
    wrapper keeps the filter's pass-context marker.)"""
    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        # The value comes after an eval context for the filters that take one.
        values = list(args[1:] if name in _TAKES_CONTEXT else args)
        if name in ("center", "indent"):
            _refuse_widths(values[1:], kwargs)
        elif name == "replace" and len(values) >= 3:
            _refuse_replace(*values[:4])
        elif name == "format" and values and isinstance(values[0], str):
            _refuse_printf_widths(values[0], tuple(values[1:]) or kwargs)
        elif name == "join" and values:
            # An iterator (``map``'s, say) can be read once: the filter gets
            # the list the check read.
            items = list(values[0])
            if len(values) < 3 and "attribute" not in kwargs:
                _joinable(items, str(values[1] if len(values) > 1 else kwargs.get("d", "")))
            at = len(args) - len(values)
            args = (*args[:at], items, *args[at + 1:])
        return _checked(fn(*args, **kwargs))
    return guarded


_SUBJECT_ENV = _SubjectEnvironment(autoescape=False, undefined=jinja2.StrictUndefined)
_TAKES_CONTEXT = frozenset(name for name, fn in _SUBJECT_ENV.filters.items()
                           if getattr(fn, "jinja_pass_arg", None) is not None)
_SUBJECT_ENV.filters.update({name: _guarded_filter(name, fn)
                             for name, fn in _SUBJECT_ENV.filters.items()})
# lipsum(n=100000000) writes nonsense paragraphs on demand; no subject needs it.
_SUBJECT_ENV.globals.pop("lipsum", None)


def render_subject(source: str, context: dict[str, Any]) -> str:
    """Render a subject line template; headers are never HTML-escaped."""
    try:
        template = _SUBJECT_ENV.from_string(_with_loop_budget(_SUBJECT_ENV.parse(source)))
        text = _bounded(template.generate({**context, _BUDGET: _LoopBudget()}))
        subject = " ".join(text.split()) if text is not None else None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError([Problem("subject", f"template syntax error: {exc.message}",
                                     exc.lineno, "subject", "a Jinja2 expression")]) from None
    except RecursionError:
        raise TemplateError([Problem("subject", f"{source!r}: a macro or loop calls itself "
                                     "without end", None, "subject",
                                     "variables such as articles, article, site")]) from None
    except Exception as exc:
        # The template is the user's input: 1/0, an undefined name, a value
        # refused by the checks above or by a filter are all its mistakes,
        # reported with it, never a traceback.
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, ArithmeticError | LookupError):
            reason = f"{type(exc).__name__}: {reason}"
        raise TemplateError([Problem("subject", f"{source!r}: {reason}", None, "subject",
                                     "variables such as articles, article, site")]) from None
    if subject is None or len(subject) > MAX_SUBJECT:
        raise TemplateError([Problem(
            "subject", f"{source!r}: it comes out longer than a subject can be "
            f"({MAX_SUBJECT} characters)", None, "subject",
            f"at most {MAX_SUBJECT} characters")])
    return subject


MAX_LOOP_STEPS = 100_000
"""Steps all of a subject's loops may take together. One loop is already
bounded (by its data, and ``range`` by Jinja at 100,000); loops inside
loops multiply, and ``range(100000)`` twice over is ten billion steps."""
_BUDGET = "_dispatch_loop_steps"


class _LoopBudget:
    """Counts one render's loop steps (each ``{% for %}`` goes through it)."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = MAX_LOOP_STEPS

    def __call__(self, iterable: Any) -> Iterator[Any]:
        for item in iterable:
            self.left -= 1
            if self.left < 0:
                raise jinja2.exceptions.SecurityError(
                    f"its loops take more than {MAX_LOOP_STEPS:,} steps in all")
            yield item


def _with_loop_budget(template: nodes.Template) -> nodes.Template:
    """The parsed template with every loop's iterable drawn through the render's
    :class:`_LoopBudget` (a name the render puts in the context)."""
    for loop in template.find_all(nodes.For):
        loop.iter = nodes.Call(nodes.Name(_BUDGET, "load"), [loop.iter], [], None, None,
                               lineno=loop.lineno)
    return template


def _bounded(chunks: Iterator[str]) -> str | None:
    """The rendered text, or None once it is longer than any subject may be:
    rendering stops there (a loop can repeat a short piece many times)."""
    parts: list[str] = []
    size = 0
    for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size > 4 * MAX_SUBJECT:  # room for the spaces that are folded away
            return None
    return "".join(parts)


def display_path(filename: str | None, settings: Settings) -> str:
    """Where a template lives, as a user should read it."""
    if not filename:
        return "templates/email"
    path = Path(filename)
    if path.is_relative_to(PACKAGE_DIR):
        return f"(packaged) dispatch/templates/email/{path.relative_to(PACKAGE_DIR).as_posix()}"
    if path.is_relative_to(settings.root):
        return path.relative_to(settings.root).as_posix()
    return str(path)


def _template_frame(exc: BaseException) -> tuple[str | None, int | None]:
    """Jinja rewrites tracebacks so template frames carry the template's file
    and line; the innermost such frame is where the error is."""
    found: tuple[str | None, int | None] = (None, None)
    for frame in traceback.extract_tb(exc.__traceback__):
        name = frame.filename
        if name.endswith((".html", ".txt", ".htm")):
            found = (name, frame.lineno)
    return found


def template_error(exc: Exception, settings: Settings) -> TemplateError:
    """Turn any failure while loading or rendering a template into a TemplateError
    that names the template file and line."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return TemplateError([Problem(display_path(exc.filename, settings),
                                      f"template syntax error: {exc.message}", exc.lineno,
                                      "template", "valid Jinja2 syntax")])
    if isinstance(exc, jinja2.TemplateNotFound):
        return TemplateError([Problem(str(site_dir(settings).relative_to(settings.root)
                                          if site_dir(settings).is_relative_to(settings.root)
                                          else site_dir(settings)),
                                      f"template {exc.name!r} not found", None, "template",
                                      "a file in templates/email/ or a packaged default")])
    filename, line = _template_frame(exc)
    if isinstance(exc, jinja2.UndefinedError):
        message = f"undefined variable: {exc.message}"
        expected = "only variables the email templates receive (see README)"
    elif isinstance(exc, SlotMisuse):
        message = str(exc)
        expected = f"{{{{ recipient.{exc.key} }}}} on its own"
    else:
        message = f"{type(exc).__name__}: {exc}"
        expected = None
    return TemplateError([Problem(display_path(filename, settings), message, line, "template",
                                  expected)])
