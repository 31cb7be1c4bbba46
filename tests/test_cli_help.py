"""Every command of the CLI answers --help: walk the click command tree, so a
command added later is covered without touching this file."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from dispatch.cli import main


def _sub(group: click.Group, name: str) -> click.Command:
    # Through click's own API: dispatch's groups load their commands lazily.
    command = group.get_command(click.Context(group), name)
    assert command is not None, name
    return command


def commands(group: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(group, click.Group):
        for name in sorted(group.list_commands(click.Context(group))):
            yield from commands(_sub(group, name), (*path, name))


ALL = list(commands(main))


def test_the_tree_is_walked() -> None:
    # The top level, and groups with their own subcommands.
    names = {" ".join(path) for path in ALL}
    assert {"", "send", "queue", "queue pause", "subscribers", "subscribers import"} <= names


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "dispatch")
def test_every_command_answers_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert result.exception is None
    usage = " ".join(("Usage:", "main", *path)) if path else "Usage:"
    assert result.output.startswith(usage) or result.output.startswith("Usage:"), result.output
    # Every command says what it does, in one line at least.
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = _sub(command, name)
    assert (command.help or command.short_help or "").strip(), f"{path}: no help text"
    assert (command.help or "").split("\n")[0].strip()[:20] in result.output
