"""Two files claiming one slug: the article that held it first keeps it, the
newcomer is refused naming both files, and nothing leaves the feeds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from tests.sitekit import write_article

from dispatch.cli import main
from dispatch.config import load_settings
from dispatch.content.loader import load_site

ENV = {**os.environ, "COLUMNS": "200"}


def run_once(root: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "dispatch", "run", "--once", "--root",
                             str(root)], capture_output=True, text=True, env=ENV, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout + result.stderr


def test_published_article_keeps_its_slug_and_its_feed_entry(example_site: Path) -> None:
    run_once(example_site)
    feed = example_site / "public" / "feed.xml"
    assert "A short walk after meals" in feed.read_text(encoding="utf-8")
    # A newcomer with an EARLIER date: the date rule alone would pick it;
    # the record of who published the slug decides instead.
    write_article(example_site, "zz-copy.md",
                  "title: Impostor\ndate: 2020-01-01\nslug: walking-after-meals")
    out = run_once(example_site)
    expected = ("content/zz-copy.md: slug: duplicate slug 'walking-after-meals': "
                "content/walking-after-meals.md published it first and keeps it; "
                "this file is refused")
    assert expected in out
    text = feed.read_text(encoding="utf-8")
    assert "A short walk after meals" in text and "Impostor" not in text
    assert "content/walking-after-meals.md:" not in out  # the holder is not an error

    # check, with the store present, gives the same verdict.
    result = CliRunner().invoke(main, ["check", "--root", str(example_site)], env=ENV)
    assert expected in result.output
    assert result.exit_code == 1


def test_without_a_record_the_earlier_date_keeps_the_slug(site_root: Path) -> None:
    write_article(site_root, "a-later.md", "title: Later\ndate: 2026-03-01\nslug: same")
    write_article(site_root, "b-earlier.md", "title: Earlier\ndate: 2026-02-01\nslug: same")
    write_article(site_root, "c-tie.md", "title: Tie\ndate: 2026-02-01\nslug: same")
    result = load_site(load_settings(site_root))
    assert [a.title for a in result.articles] == ["Earlier"]
    refused = sorted(p.path for p in result.errors)
    assert refused == ["content/a-later.md", "content/c-tie.md"]
    assert all("content/b-earlier.md has the earlier date and keeps it" in p.message
               for p in result.errors)
