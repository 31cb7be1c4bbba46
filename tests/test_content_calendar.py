"""Dates near the ends of the calendar, and any other date value: a located
error for that file, never a traceback, and every other article carries on."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tests.sitekit import write_article

from dispatch.cli import main
from dispatch.content.article import build_article

ENV = {**os.environ, "COLUMNS": "200"}
EDGES = [
    ("0001-01-01T00:30:00+05:00", "date"),
    ("9999-12-31T23:00:00-05:00", "date"),
    ("0001-01-01", "date"),           # naive: read in Europe/London, fine in UTC, not later
    ("9999-12-31T23:59:59", "date"),
    ("0001-01-01T00:00:00+00:00", "updated"),
    ("9999-12-31T20:00:00-08:00", "updated"),
]


def _edge_site(root: Path) -> list[str]:
    sources = []
    for n, (value, key) in enumerate(EDGES):
        front = (f"title: Edge {n}\ndate: '{value}'" if key == "date"
                 else f"title: Edge {n}\ndate: 2026-01-05\nupdated: '{value}'")
        write_article(root, f"edge-{n}.md", front, "Text.\n\n## Key takeaway\n\nKept.\n")
        sources.append(f"content/edge-{n}.md")
    return sources


def test_check_names_each_file_and_line(example_site: Path) -> None:
    sources = _edge_site(example_site)
    result = CliRunner().invoke(main, ["check", "--root", str(example_site)], env=ENV)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for source, (_value, key) in zip(sources, EDGES, strict=True):
        line = 3 if key == "date" else 4
        assert f"{source}:{line}: {key}: " in result.output, result.output
    assert "too close to the ends of the calendar" in result.output
    assert "between 0001-01-02 and 9999-12-30" in result.output


@pytest.mark.parametrize("command", [["articles"], ["build"], ["preview", "edge-0"],
                                     ["preview", "--digest"]])
def test_other_commands_report_and_go_on(example_site: Path, command: list[str]) -> None:
    _edge_site(example_site)
    result = CliRunner().invoke(main, [*command, "--root", str(example_site)], env=ENV)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception)
    assert "Traceback" not in result.output
    assert "content/edge-0.md:3: date: " in result.output
    if command == ["articles"]:
        assert "sleep-and-blood-pressure" in result.output
    if command == ["build"]:
        assert (example_site / "public" / "feed.xml").exists()
        assert "sleep-and-blood-pressure" in (example_site / "public" / "feed.xml").read_text()
    if command == ["preview", "edge-0"]:
        assert result.exit_code == 1
        assert "'edge-0' has errors: it reaches no feed, post or email" in result.output


def test_run_once_goes_on_for_every_other_article(example_site: Path) -> None:
    _edge_site(example_site)
    result = subprocess.run([sys.executable, "-m", "dispatch", "run", "--once", "--root",
                             str(example_site)], capture_output=True, text=True, env=ENV,
                            timeout=300)
    out = result.stdout + result.stderr
    assert "Traceback" not in out
    assert result.returncode == 1  # errors were found …
    assert "content/edge-1.md:3: date: " in out
    # … and the pass still recorded, built and delivered for everybody else.
    assert "loaded 6," in out
    feed = (example_site / "public" / "feed.xml").read_text(encoding="utf-8")
    assert "walking-after-meals" in feed
    assert "Edge " not in feed


# ---- fuzz: whatever the date field holds, an article or a located problem ----

ZONES = ["UTC", "Europe/London", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Kolkata"]


def _aware() -> st.SearchStrategy[datetime]:
    offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
        lambda m: timezone(timedelta(minutes=m)))
    return st.datetimes(timezones=st.one_of(st.just(UTC), offsets, st.sampled_from(
        [ZoneInfo(z) for z in ZONES])))


def _near_the_ends() -> st.SearchStrategy[datetime]:
    """Naive datetimes within two days of either end of the calendar, given
    an offset or zone afterwards: where the conversions overflow."""
    low = st.datetimes(max_value=datetime(1, 1, 3))
    high = st.datetimes(min_value=datetime(9999, 12, 29))
    offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
        lambda m: timezone(timedelta(minutes=m)))
    return st.tuples(st.one_of(low, high), st.one_of(st.none(), offsets)).map(
        lambda pair: pair[0].replace(tzinfo=pair[1]))


def _values() -> st.SearchStrategy[Any]:
    as_text = st.one_of(
        _near_the_ends().map(lambda d: d.isoformat()),
        _near_the_ends().map(lambda d: d.date().isoformat()),
        _aware().map(lambda d: d.isoformat()),
        st.datetimes().map(lambda d: d.isoformat()),
        st.dates().map(lambda d: d.isoformat()),
        st.datetimes().map(lambda d: d.isoformat(sep=" ", timespec="minutes")),
        st.text(alphabet="0123456789-:+TZ. ", max_size=40),
        st.text(max_size=30),
    )
    return st.one_of(as_text, st.integers(), st.floats(), st.booleans(), st.none(),
                     st.lists(st.integers(), max_size=2))


def _yaml(value: Any) -> str:
    """JSON is YAML, so every value arrives exactly as generated; except that
    JSON writes a character beyond U+FFFF as a surrogate pair (\\ud800\\udc00),
    which YAML refuses, so such pairs are written as YAML's \\U00010000."""
    import json
    import re

    def astral(pair: re.Match[str]) -> str:
        high, low = int(pair[1], 16), int(pair[2], 16)
        return f"\\U{0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00):08X}"

    return re.sub(r"\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})", astral, json.dumps(value))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(value="0001-01-01T00:30:00+05:00", key="date", zone="UTC")
@example(value="9999-12-31T23:00:00-05:00", key="updated", zone="Europe/London")
@example(value="9999-12-31", key="date", zone="Pacific/Kiritimati")
@example(value="\U00010000", key="date", zone="UTC")
@given(value=_values(), key=st.sampled_from(["date", "updated"]), zone=st.sampled_from(ZONES))
def test_fuzzed_dates_never_reach_a_traceback(value: Any, key: str, zone: str) -> None:
    tz = ZoneInfo(zone)
    front = (f"title: T\ndate: {_yaml(value)}" if key == "date"
             else f"title: T\ndate: 2026-01-05\nupdated: {_yaml(value)}")
    text = f"---\n{front}\n---\nBody.\n"
    article, problems = build_article(text, "content/x.md", "h", "https://s.test", tz)
    if article is None:
        errors = [p for p in problems if p.is_error]
        assert errors and all(p.line is not None and p.field == key for p in errors), problems
        return
    # Whatever was accepted can be shown anywhere and stored: every stage
    # converts dates to UTC, to the site's zone, or formats them.
    for when in filter(None, (article.date, article.updated)):
        assert when.tzinfo is not None
        for other in (UTC, tz, ZoneInfo("Pacific/Kiritimati"), ZoneInfo("Pacific/Pago_Pago")):
            when.astimezone(other).isoformat()
        when.timestamp()
        when.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S")


def test_the_ends_of_the_range_work_everywhere(site_root: Path) -> None:
    write_article(site_root, "first.md", "title: First\ndate: '0001-01-02T00:00:00+00:00'")
    write_article(site_root, "last.md", "title: Last\ndate: '9999-12-30T23:59:59+00:00'")
    runner = CliRunner()
    for command in (["check"], ["articles"], ["build"], ["preview", "first"],
                    ["preview", "last"]):
        result = runner.invoke(main, [*command, "--root", str(site_root)], env=ENV)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            command, result.exception)
        assert "too close to the ends" not in result.output
    feed = (site_root / "public" / "feed.xml").read_text(encoding="utf-8")
    assert "First" in feed and "Last" not in feed  # the last one is scheduled
