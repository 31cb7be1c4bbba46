"""The one site factory of the tests: a dispatch.toml, articles, and a store.

Every test that needs a site on disk starts from :data:`SITE_TOML` (the
smallest valid ``dispatch.toml``) through :func:`write_site` or
:func:`build_site`, adding only what it is about::

    settings, store = build_site(tmp_path / "site", toml=SOCIAL,
                                 articles={"sleep.md": (FRONT, BODY)},
                                 database_url=database_url)
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping
from pathlib import Path

from dispatch.config import Settings, load_settings
from dispatch.store import open_store
from dispatch.store.engine import Store

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

Articles = Mapping[str, tuple[str, str]]
"""File name under content/ -> (frontmatter lines, body)."""


def write_article(root: Path, name: str, frontmatter: str, body: str = "Body text.\n") -> Path:
    """Write ``content/NAME`` with the given frontmatter lines (dedented) and body."""
    path = root / "content" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\n{textwrap.dedent(frontmatter).strip()}\n---\n{body}", encoding="utf-8")
    return path


def write_site(root: Path, *, toml: str = "", articles: Articles | None = None,
               url: str | None = None, base: str = SITE_TOML,
               files: Mapping[str, str] | None = None) -> Path:
    """A site folder: ``base`` (:data:`SITE_TOML`) plus ``toml``, a content
    folder with ``articles`` (frontmatter, body) and ``files`` (whole texts,
    by name under content/); ``url`` replaces the site's URL (a test server's)."""
    (root / "content").mkdir(parents=True, exist_ok=True)
    if url is not None:
        base = base.replace("https://journal.test", url)
    (root / "dispatch.toml").write_text(base + toml, encoding="utf-8")
    for name, (frontmatter, body) in (articles or {}).items():
        write_article(root, name, frontmatter, body)
    for name, text in (files or {}).items():
        path = root / "content" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def append_toml(root: Path, text: str) -> None:
    """Add tables to an existing site's dispatch.toml."""
    with (root / "dispatch.toml").open("a", encoding="utf-8") as handle:
        handle.write(text)


def open_site(root: Path, database_url: str | None = None) -> tuple[Settings, Store]:
    """The settings of the site at ``root`` (the environment as it is, with
    ``database_url`` as DISPATCH_DATABASE_URL when given) and its open store;
    the caller disposes of the store."""
    environ = dict(os.environ)
    if database_url is not None:
        environ["DISPATCH_DATABASE_URL"] = database_url
    settings = load_settings(root, environ=environ)
    return settings, open_store(settings.database_url)


def build_site(root: Path, *, toml: str = "", articles: Articles | None = None,
               url: str | None = None, database_url: str | None = None
               ) -> tuple[Settings, Store]:
    """:func:`write_site`, then :func:`open_site`."""
    write_site(root, toml=toml, articles=articles, url=url)
    return open_site(root, database_url)
