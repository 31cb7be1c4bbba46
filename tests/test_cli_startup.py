"""Start-up: `dispatch --help` imports only what it needs (click and the error
tree), checked through sys.modules in a fresh interpreter rather than timed;
bench/startup.py measures the import time of each command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click

from dispatch.cli.base import COMMAND_HELP, LAZY_COMMANDS, main

HEAVY = ("pydantic", "sqlalchemy", "rich", "markdown_it", "jinja2", "twitter_text",
         "premailer", "feedgen", "httpx", "yaml", "starlette", "uvicorn", "lxml", "nh3",
         "frontmatter", "apscheduler", "dispatch.config", "dispatch.store", "dispatch.content",
         "dispatch.render", "dispatch.social", "dispatch.feeds", "dispatch.delivery")

PROBE = """
import contextlib, io, json, sys
sys.argv = ["dispatch", *json.loads(sys.argv[1])]
from dispatch.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        main()
    except SystemExit:
        pass
print(json.dumps({"modules": sorted(sys.modules), "out": out.getvalue()}))
"""


def modules_after(*args: str) -> tuple[set[str], str]:
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(list(args))],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "COLUMNS": "100"})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.splitlines()[-1])
    return set(data["modules"]), data["out"]


def test_help_imports_nothing_heavy() -> None:
    modules, out = modules_after("--help")
    assert "Commands:" in out and "articles" in out
    loaded = sorted(m for m in modules for heavy in HEAVY
                    if m == heavy or m.startswith(heavy + "."))
    assert loaded == [], loaded
    # None of the commands' own modules either: their help comes from a table.
    assert not any(m.startswith("dispatch.cli.") and m != "dispatch.cli.base"
                   for m in modules), sorted(m for m in modules if m.startswith("dispatch.cli"))


def test_every_command_is_listed_with_its_own_help() -> None:
    assert set(COMMAND_HELP) == set(LAZY_COMMANDS)
    ctx = click.Context(main)
    for name in LAZY_COMMANDS:
        command = main.get_command(ctx, name)
        assert command is not None
        assert COMMAND_HELP[name] == command.get_short_help_str(10_000), name


def test_a_subcommand_help_still_works() -> None:
    _modules, out = modules_after("check", "--help")
    assert "--root" in out and "Validate articles" in out


NOT_FOR_READING = ("sqlalchemy", "asyncio", "starlette", "anyio", "uvicorn", "httpx", "requests",
                   "urllib3", "psycopg", "apscheduler", "feedgen", "dispatch.store.schema",
                   "dispatch.store.migrations", "dispatch.web.app")
"""What neither `check` nor `articles` needs on a site whose store is up to
date: the store is read through sqlite3, and nothing talks to a network."""


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules for name in names if m == name or m.startswith(name + "."))


def test_a_warm_articles_loads_no_markdown_or_email_renderer(example_site) -> None:  # type: ignore[no-untyped-def]
    assert modules_after("articles", "--root", str(example_site))[1]  # warms the load cache
    modules, out = modules_after("articles", "--root", str(example_site))
    assert "sleep-and-blood-pressure" in out
    heavy = ("markdown_it", "nh3", "yaml", "frontmatter", "jinja2", "premailer", "lxml",
             "twitter_text", "dispatch.render.edition", "dispatch.render.inline",
             "dispatch.social.compose", "dispatch.checks", "rich.markdown")
    assert _loaded(modules, (*heavy, *NOT_FOR_READING)) == []


def test_check_loads_no_database_library_or_network_client(example_site) -> None:  # type: ignore[no-untyped-def]
    # Before any store exists, and on the store another command made.
    cold, out = modules_after("check", "--root", str(example_site))
    assert "0 error(s)" in out
    assert _loaded(cold, NOT_FOR_READING) == []
    modules_after("articles", "--root", str(example_site))
    warm, out = modules_after("check", "--root", str(example_site))
    assert "0 error(s)" in out
    # Still a full check: every article's email is rendered (Gmail's clip).
    assert "premailer" in warm and "dispatch.render.checks" in warm
    # The articles come from the load cache (read only): no front matter parsed.
    assert _loaded(warm, (*NOT_FOR_READING, "frontmatter", "dispatch.content.meta")) == []
    # Once a check has rendered the emails and the schedules' editions, the
    # next one finds what they found in the state folder: nothing rendered.
    again, said = modules_after("check", "--root", str(example_site))
    assert said == out
    assert _loaded(again, (*NOT_FOR_READING, *RENDERING)) == []


RENDERING = ("premailer", "cssutils", "lxml", "markdown_it", "nh3", "dispatch.render.checks",
             "dispatch.render.edition", "dispatch.render.inline", "dispatch.content.markdown",
             "imaplib", "poplib", "ssl")
"""What a check of a site whose emails were checked before does not load."""
