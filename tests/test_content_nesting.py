"""Deeply nested lists and quotes: content never vanishes silently. Up to the
documented depth everything after the nesting (the key takeaway included)
reaches email and feeds; deeper is an error naming the line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import feedparser
import pytest
from click.testing import CliRunner
from tests.sitekit import write_article

from dispatch.cli import main

MAX_DEPTH = 40
"""The depth the README promises."""

ENV = {**os.environ, "COLUMNS": "200"}
TAKEAWAY = "Walk for ten minutes after dinner"


def nested_list(levels: int) -> str:
    return "".join("  " * i + f"- level {i + 1}\n" for i in range(levels))


def nested_quote(levels: int) -> str:
    return "> " * levels + "deepest quote\n"


def body(nesting: str) -> str:
    return (f"Intro paragraph.\n\n{nesting}\nA paragraph after the nesting.\n\n"
            f"## Key takeaway\n\n{TAKEAWAY}.\n")


FRONT = "title: Deep\ndate: 2026-01-05\nsummary: Deep nesting"


@pytest.mark.parametrize("nesting", [nested_list(10), nested_list(12), nested_list(MAX_DEPTH),
                                     nested_quote(MAX_DEPTH),
                                     nested_list(MAX_DEPTH // 2) + "\n" + nested_quote(20)],
                         ids=["list10", "list12", "list-max", "quote-max", "mixed"])
def test_what_follows_deep_nesting_reaches_email_and_feeds(site_root: Path,
                                                           nesting: str) -> None:
    write_article(site_root, "deep.md", FRONT, body(nesting))
    runner = CliRunner()
    check = runner.invoke(main, ["check", "--root", str(site_root)], env=ENV)
    assert "nest more than" not in check.output, check.output

    preview = runner.invoke(main, ["preview", "deep", "--root", str(site_root)], env=ENV)
    assert preview.exit_code == 0, preview.output
    html = (site_root / ".dispatch" / "preview" / "deep.html").read_text(encoding="utf-8")
    text = (site_root / ".dispatch" / "preview" / "deep.txt").read_text(encoding="utf-8")
    for part in (html, text):
        assert TAKEAWAY in part and "A paragraph after the nesting." in part
    assert "level 10" in text or "deepest" in text

    build = runner.invoke(main, ["build", "--root", str(site_root)], env=ENV)
    assert build.exit_code == 0, build.output
    contents = {}
    for name in ("feed.xml", "atom.xml"):
        parsed = feedparser.parse(str(site_root / "public" / name))
        (entry,) = parsed.entries
        contents[name] = entry.content[0].value if "content" in entry else entry.description
    (item,) = json.loads((site_root / "public" / "feed.json").read_text("utf-8"))["items"]
    contents["feed.json"] = item["content_html"]
    for name, content in contents.items():
        assert TAKEAWAY in content, name
        assert "A paragraph after the nesting." in content, name


@pytest.mark.parametrize("nesting", [nested_list(MAX_DEPTH + 1), nested_list(500),
                                     nested_quote(MAX_DEPTH + 1), nested_quote(3000)],
                         ids=["list-over", "list-500", "quote-over", "quote-3000"])
def test_deeper_nesting_is_an_error_naming_the_line(site_root: Path, nesting: str) -> None:
    write_article(site_root, "deep.md", FRONT, body(nesting))
    write_article(site_root, "fine.md", "title: Fine\ndate: 2026-01-04", "Fine text.\n")
    runner = CliRunner()
    check = runner.invoke(main, ["check", "--root", str(site_root)], env=ENV)
    assert check.exit_code == 1
    # The body starts on line 5 of the file (three frontmatter lines); the
    # nesting on its third line, so the file's line 7 and on.
    located = [line for line in check.output.splitlines()
               if line.startswith("content/deep.md:") and "nest more than" in line]
    assert located, check.output
    line = int(located[0].split(":")[1])
    assert 7 <= line <= 7 + MAX_DEPTH + 1
    assert f"at most {MAX_DEPTH} levels" in located[0]

    build = runner.invoke(main, ["build", "--root", str(site_root)], env=ENV)
    feed = (site_root / "public" / "feed.xml").read_text(encoding="utf-8")
    assert "Fine" in feed and "Deep" not in feed  # refused whole, never cut short
    assert "content/deep.md:" in build.output


def test_the_documented_depth_is_the_code_s() -> None:
    from dispatch.content import markdown

    assert markdown.MAX_DEPTH == MAX_DEPTH
