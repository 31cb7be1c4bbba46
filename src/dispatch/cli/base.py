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
from typing import Any, TypeVar

import click
from rich.console import Console

from dispatch.config import Settings, load_settings
from dispatch.errors import DispatchError, InputError, Problem
from dispatch.store.engine import Store, open_store

F = TypeVar("F", bound=Callable[..., Any])

# emoji=False: rich would turn "schedules.yaml:100:" into "schedules.yaml💯".
console = Console(highlight=False, soft_wrap=True, emoji=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


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


class DispatchGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

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
                err_console.print(f"error: {exc}", markup=False)
            sys.exit(exc.exit_code)
        except DispatchError as exc:
            err_console.print(f"error: {exc}", markup=False)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            err_console.print("interrupted")
            sys.exit(130)


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
    err_console.print(f"upgrade: {len(records)} subscriber row(s) were other spellings of an "
                      "address already on file and were merged into it:", markup=False)
    for r in records[:20]:
        err_console.print(f"  {r.merged_email} ({r.merged_status}) -> {r.kept_email} "
                          f"(now {r.status})", markup=False)
    if len(records) > 20:
        err_console.print(f"  … and {len(records) - 20} more", markup=False)
    err_console.print("  (see `dispatch subscribers merges`)", markup=False)


def site_command(func: F) -> F:
    """Add ``--root`` and ``--verbose`` and pass a :class:`Site` as ``site``."""

    @click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
                  show_default=True, help="The site folder.")
    @click.option("--verbose", "-v", is_flag=True, help="Say more.")
    @functools.wraps(func)
    def wrapper(*args: Any, root: Path, verbose: bool, **kwargs: Any) -> Any:
        logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")
        if not root.is_dir():
            raise InputError(f"site folder {root} does not exist")
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
        err_console.print(str(problem), style=style, markup=False)
