"""Small helpers for building test sites."""

from __future__ import annotations

import textwrap
from pathlib import Path

SITE_TOML = """\
[site]
title = "Test Journal"
url = "https://journal.test"
timezone = "Europe/London"

[sender]
name = "Test Journal"
email = "news@journal.test"
postal_address = "1 Test Street, Testville"
"""
"""The smallest valid dispatch.toml for a test site."""


def write_article(root: Path, name: str, frontmatter: str, body: str = "Body text.\n") -> Path:
    """Write ``content/NAME`` with the given frontmatter lines (dedented) and body."""
    path = root / "content" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\n{textwrap.dedent(frontmatter).strip()}\n---\n{body}", encoding="utf-8")
    return path
