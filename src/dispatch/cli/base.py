"""The ``dispatch`` group, shared options, and error handling.

Errors a user can cause are :class:`~dispatch.errors.DispatchError`; they are
printed as one clean message and turned into the error's exit code. Anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import importlib
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dispatch.errors import DispatchError, InputError, Problem

if TYPE_CHECKING:
    from rich.console import Console

    from dispatch.config import Settings
    from dispatch.content.loader import LoadResult
    from dispatch.store.engine import Store

F = TypeVar("F", bound=Callable[..., Any])


def _make_console(name: str) -> Console:
    """The rich Console ``console`` (stdout) or ``err_console`` (stderr), made
    on first use and kept: ``dispatch --help`` never imports rich.

    Start-up matters because every command pays it; this module is imported
    by all of them, so it imports only click and the error tree at the top.
    """
    made = globals().get(name)
    if made is None:
        from rich.console import Console

        # emoji=False: rich would turn "schedules.yaml:100:" into "schedules.yaml💯".
        made = Console(stderr=name == "err_console", highlight=False, soft_wrap=True,
                       emoji=False)
        globals()[name] = made
    return made


if TYPE_CHECKING:
    console: Console
    err_console: Console


def __getattr__(name: str) -> Any:
    # PEP 562: `from dispatch.cli.base import console` makes it on first import.
    if name in ("console", "err_console"):
        return _make_console(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


LAZY_COMMANDS = {
    "check": "dispatch.cli.core:check",
    "articles": "dispatch.cli.core:articles",
    "run": "dispatch.cli.core:run",
    "build": "dispatch.cli.feeds:build",
    "preview": "dispatch.cli.email:preview",
    "social": "dispatch.cli.social:social",
    "subscribers": "dispatch.cli.subscribers:subscribers",
    "send": "dispatch.cli.queue:send",
    "queue": "dispatch.cli.queue:queue",
    "worker": "dispatch.cli.queue:worker",
    "schedules": "dispatch.cli.schedule:schedules",
    "plan": "dispatch.cli.schedule:plan",
    "trigger": "dispatch.cli.schedule:trigger",
    "serve": "dispatch.cli.web:serve",
    "staff": "dispatch.cli.staff:staff",
    "editions": "dispatch.cli.editions:editions",
    "bounces": "dispatch.cli.bounces:bounces",
    "dkim": "dispatch.cli.dkim:dkim",
}
"""Each command's module is imported only when that command runs: importing
them all (premailer, feedgen, twitter-text, SQLAlchemy dialects) cost over a
second before `dispatch --help` could print anything."""

COMMAND_HELP = {
    "check": "Validate articles and configuration; exit 1 if anything is an error.",
    "articles": "List articles: slug, status, date, category, key takeaway.",
    "run": "Run the pipeline and the scheduler: one pass with --once, otherwise until "
           "Ctrl-C or SIGTERM, delivering all along beside the passes.",
    "build": "Write RSS, Atom and JSON feeds, site-wide and per category.",
    "preview": "Render the email for SLUG (or --digest) for a sample recipient.",
    "social": "Show the post each configured network gets for article SLUG.",
    "subscribers": "Manage subscribers and lists.",
    "send": "Queue SLUG (or --digest) for the --audience lists now (or --test it).",
    "queue": "Queued editions with their counts (queued = sent + failed + suppressed + "
             "cancelled + pending); subcommands pause, resume, cancel and retry.",
    "worker": "Deliver queued email; run as many as you like against one database.",
    "schedules": "List each schedule with its next three firings (its own timezone and UTC).",
    "plan": "Dry run: each firing until DATE and what it would send.",
    "trigger": "Fire schedule ID now (recorded once, like any firing).",
    "serve": "Serve the feeds, one-click unsubscribe, web views and bounce webhooks with "
             "uvicorn.",
    "staff": "Staff accounts for the admin pages (`dispatch serve`, /admin/).",
    "editions": "Editions, newest first: when, subject, audience, and what became of each "
                "message.",
    "bounces": "Bounces, complaints and mailto unsubscribes.",
    "dkim": "DKIM keys: make one, and check a message's signatures offline.",
}
"""Each command's one-line help, so ``dispatch --help`` lists the commands
without importing their modules (a test keeps it equal to the docstrings).
A command missing here is imported for its help, as before."""


class DispatchGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            text = COMMAND_HELP.get(name)
            if text is None:
                command = self.get_command(ctx, name)
                if command is None or command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(limit)))
            else:
                rows.append((name, click.Command(name, help=text).get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            module_name, attr = LAZY_COMMANDS[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InputError as exc:
            if exc.problems:
                print_problems(exc.problems)
            else:
                _make_console("err_console").print(f"error: {exc}", markup=False)
            sys.exit(exc.exit_code)
        except DispatchError as exc:
            _make_console("err_console").print(f"error: {exc}", markup=False)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            _make_console("err_console").print("interrupted")
            sys.exit(130)
        except OSError as exc:
            # A folder or file the user named or configured cannot be made,
            # read or written (--out /srv/www without rights, a full disk):
            # their mistake to fix, so say which path, without a traceback.
            if exc.filename is None:
                raise
            where = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
            _make_console("err_console").print(f"error: {where}: {exc.strerror}", markup=False)
            sys.exit(1)


@click.group(cls=DispatchGroup)
@click.version_option(package_name="dispatch")
def main() -> None:
    """dispatch: Markdown articles to email, feeds and social posts."""


@dataclass
class Site:
    """What every command works on: the settings, and the store once asked for."""

    settings: Settings
    verbose: bool
    _store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            from dispatch.store.engine import open_store

            self._store = open_store(self.settings.database_url)
            if "subscribers_0002_address_identity" in self._store.applied:
                _report_merges(self._store)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.dispose()


def _report_merges(store: Store) -> None:
    """The address-identity upgrade folds duplicate spellings into one
    subscriber; whoever ran the command that upgraded is told what it did."""
    from dispatch.subscribers.merges import merge_records

    records = merge_records(store)
    if not records:
        return
    say = _make_console("err_console").print
    say(f"upgrade: {len(records)} subscriber row(s) were other spellings of an "
        "address already on file and were merged into it:", markup=False)
    for r in records[:20]:
        say(f"  {r.merged_email} ({r.merged_status}) -> {r.kept_email} (now {r.status})",
            markup=False)
    if len(records) > 20:
        say(f"  … and {len(records) - 20} more", markup=False)
    say("  (see `dispatch subscribers merges`)", markup=False)


class _LogFormatter(logging.Formatter):
    """Log lines read like the rest of the CLI's output ("warning: …",
    "error: …"); the logger's name is only worth its width with --verbose,
    where it tells which part of the pass spoke."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        # A record may name itself a "note" (a reminder, not a problem to fix:
        # the development secret key), as `check` prints the same reminder.
        level = getattr(record, "label", None) or record.levelname.lower()
        return f"{level} {record.name}: {text}" if self.verbose else f"{level}: {text}"


def _configure_logging(verbose: bool) -> None:
    root = logging.getLogger()
    if root.handlers:  # already set up (a second command in one process, or a test)
        return
    handler = logging.StreamHandler()
    handler.setFormatter(_LogFormatter(verbose))
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)


def site_command(func: F) -> F:
    """Add ``--root`` and ``--verbose`` and pass a :class:`Site` as ``site``."""

    @click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
                  show_default=True, help="The site folder.")
    @click.option("--verbose", "-v", is_flag=True, help="Say more.")
    @functools.wraps(func)
    def wrapper(*args: Any, root: Path, verbose: bool, **kwargs: Any) -> Any:
        _configure_logging(verbose)
        if not root.is_dir():
            raise InputError(f"site folder {root} does not exist")
        from dispatch.config import load_settings

        site = Site(load_settings(root), verbose)
        try:
            return func(*args, site=site, **kwargs)
        finally:
            site.close()

    return wrapper  # type: ignore[return-value]


def now() -> datetime:
    """The CLI is the one place that reads the clock; everything below takes it."""
    return datetime.now(UTC)


def print_problems(problems: Iterable[Problem]) -> None:
    for problem in problems:
        style = "red" if problem.is_error else "yellow"
        _make_console("err_console").print(str(problem), style=style, markup=False)


def missing_article(loaded: LoadResult, slug: str) -> InputError:
    """What a command given an unknown SLUG says: the file's errors if one of
    the site's files would have had that slug (it reaches no channel until
    they are fixed), otherwise where to look."""
    errors = loaded.errors_for_slug(slug)
    if errors:
        return InputError([*errors, Problem(errors[0].path, f"{slug!r} has errors: it reaches "
                                            "no feed, post or email until they are fixed")])
    return InputError(f"no article with slug {slug!r} (see `dispatch articles`)")
