"""The Jinja2 environments: email templates, and subject lines.

A site's ``templates/email/`` comes first and the packaged defaults second,
so overriding one template means copying that one file. Undefined variables
are errors (StrictUndefined): a typo in a template must not send an email
with a hole in it.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

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


class _SubjectEnvironment(SandboxedEnvironment):
    """Refuses ``"x" * 100000000`` and ``9 ** 9999999`` before computing them:
    the rendered subject is refused past MAX_SUBJECT anyway, but only after
    the memory or time has been spent."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any,
                   right: Any) -> Any:
        if operator == "*" and (_too_long(left, right) or _too_long(right, left)):
            raise jinja2.exceptions.SecurityError(
                f"the result would be longer than a subject can be ({MAX_SUBJECT} characters)")
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_SUBJECT:
            raise jinja2.exceptions.SecurityError(f"the power {right} is too large")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any,
             **kwargs: Any) -> Any:
        # "x".ljust(100000000), "x".center(…), "7".zfill(…): a width no
        # subject can have is refused before the string is built. Only the
        # padding methods: elsewhere a big number is an ordinary argument.
        if isinstance(getattr(__obj, "__self__", None), str) and \
                getattr(__obj, "__name__", "") in _PADDING:
            _refuse_widths(args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)


_PADDING = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


def _too_long(sequence: Any, times: Any) -> bool:
    return (isinstance(sequence, str | list | tuple) and isinstance(times, int)
            and len(sequence) * times > MAX_SUBJECT)


def _refuse_widths(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_SUBJECT:
            raise jinja2.exceptions.SecurityError(
                f"{value} is more than a subject can hold ({MAX_SUBJECT} characters)")


def _guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A padding filter that refuses a width no subject can have
    (``center(100000000)``): filters are called directly, not through the
    sandbox's ``call``."""
    @functools.wraps(fn)
    def guarded(value: Any, *args: Any, **kwargs: Any) -> Any:
        _refuse_widths(args, kwargs)
        return fn(value, *args, **kwargs)
    return guarded


_SUBJECT_ENV = _SubjectEnvironment(autoescape=False, undefined=jinja2.StrictUndefined)
# The built-in filters that pad to a width; neither takes a pass_* argument.
_SUBJECT_ENV.filters.update({name: _guarded(_SUBJECT_ENV.filters[name])
                             for name in ("center", "indent")})


def render_subject(source: str, context: dict[str, Any]) -> str:
    """Render a subject line template; headers are never HTML-escaped."""
    try:
        text = _bounded(_SUBJECT_ENV.from_string(source).generate(context))
        subject = " ".join(text.split()) if text is not None else None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError([Problem("subject", f"template syntax error: {exc.message}",
                                     exc.lineno, "subject", "a Jinja2 expression")]) from None
    except (jinja2.UndefinedError, jinja2.exceptions.SecurityError, TypeError,
            ValueError) as exc:
        raise TemplateError([Problem("subject", f"{source!r}: {exc}", None, "subject",
                                     "variables such as articles, article, site")]) from None
    if subject is None or len(subject) > MAX_SUBJECT:
        raise TemplateError([Problem(
            "subject", f"{source!r}: it comes out longer than a subject can be "
            f"({MAX_SUBJECT} characters)", None, "subject",
            f"at most {MAX_SUBJECT} characters")])
    return subject


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
