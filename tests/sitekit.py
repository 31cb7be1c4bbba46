"""Small helpers for building test sites."""

from __future__ import annotations

import textwrap
from pathlib import Path


def write_article(root: Path, name: str, frontmatter: str, body: str = "Body text.\n") -> Path:
    """Write ``content/NAME`` with the given frontmatter lines (dedented) and body."""
    path = root / "content" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\n{textwrap.dedent(frontmatter).strip()}\n---\n{body}", encoding="utf-8")
    return path
