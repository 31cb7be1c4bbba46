"""Bidirectional override and isolate characters in text that reaches email
headers, feeds and posts: a warning naming the file, line and field."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.sitekit import write_article

from dispatch.cli import main
from dispatch.config import load_settings
from dispatch.content.loader import load_site

BIDI = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]


@pytest.mark.parametrize("char", BIDI, ids=[f"U+{ord(c):04X}" for c in BIDI])
def test_each_bidi_control_in_a_title_is_a_warning_naming_the_line(site_root: Path,
                                                                  char: str) -> None:
    write_article(site_root, "a.md", f'date: 2026-01-05\ntitle: "Invoice {char}fdp.exe"')
    result = load_site(load_settings(site_root))
    (warning,) = [p for p in result.warnings if "bidirectional" in p.message]
    assert (warning.path, warning.line, warning.field) == ("content/a.md", 3, "title")
    assert f"U+{ord(char):04X}" in warning.message
    assert [a.slug for a in result.articles] == ["a"]  # a warning: it still loads


@pytest.mark.parametrize(("key", "value", "line"), [
    ("summary", '"A \u202edeks"', 4), ("category", '"Heart\u2067"', 4),
    ("author", '"Dr \u202bX"', 4), ("image_alt", '"alt \u2066text\u2069"', 4),
    ("takeaway", '"Key \u202a point"', 4), ("tags", '[ok, "t\u202dag"]', 4),
    ("social", '{mastodon: "post \u2068here\u2069"}', 4),
])
def test_every_text_field_is_checked(site_root: Path, key: str, value: str, line: int) -> None:
    write_article(site_root, "a.md", f"title: Fine\ndate: 2026-01-05\n{key}: {value}")
    result = load_site(load_settings(site_root))
    located = [(p.line, p.field) for p in result.warnings if "bidirectional" in p.message]
    assert located == [(line, key)]


def test_check_prints_it_and_plain_text_is_quiet(site_root: Path) -> None:
    write_article(site_root, "a.md", 'title: "Sale \u202eten"\ndate: 2026-01-05')
    write_article(site_root, "b.md", 'title: "עברית and English"\ndate: 2026-01-05')
    result = CliRunner().invoke(main, ["check", "--root", str(site_root)],
                                env={**os.environ, "COLUMNS": "200"})
    assert "content/a.md:2: title: warning: invisible bidirectional control U+202E" in (
        result.output)
    assert "content/b.md:2" not in result.output  # right-to-left text itself is fine
