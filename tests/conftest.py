"""Fixtures shared by every test module: example sites and databases."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from tests.pg_schema import scratch_schema
from tests.sitekit import write_site

from dispatch.store import open_store
from dispatch.store.engine import Store

REPO = Path(__file__).resolve().parent.parent
POSTGRES_ENV = "DISPATCH_TEST_POSTGRES_URL"

# Hypothesis's timing checks are timed assertions in disguise: on a shared
# two-core machine under load, generating a handful of inputs can take a
# second. The properties are what the tests check, not the speed.
settings.register_profile("shared-machine", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("shared-machine")



@pytest.fixture
def site_root(tmp_path: Path) -> Path:
    """An empty site: dispatch.toml and an empty content folder."""
    return write_site(tmp_path / "site")


@pytest.fixture
def db_site(site_root: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The empty site, its state in the parametrized database (SQLite or
    PostgreSQL) through DISPATCH_DATABASE_URL, as the CLI would find it (and
    no SMTP server from the environment)."""
    monkeypatch.setenv("DISPATCH_DATABASE_URL", database_url)
    monkeypatch.delenv("DISPATCH_SMTP_URL", raising=False)
    return site_root


@pytest.fixture
def example_site(tmp_path: Path) -> Path:
    """A private copy of the repository's example site."""
    root = tmp_path / "example"
    root.mkdir()
    for name in ("content", "templates", "static"):
        if (REPO / name).exists():
            shutil.copytree(REPO / name, root / name)
    for name in ("dispatch.toml", "schedules.yaml", "subscribers.csv"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, root / name)
    return root


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards.

    Skips, saying why, when DISPATCH_TEST_POSTGRES_URL is not set (.ci/run
    sets it to this machine's server).
    """
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (set by .ci/run)")
    with scratch_schema(base, "t") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on a real SQLite file and on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A migrated store on each database (a module may define its own ``store``)."""
    opened = open_store(database_url)
    yield opened
    opened.dispose()


@pytest.fixture
def any_store(database_url: str) -> Iterator[Store]:
    """The same, for modules whose own ``store`` fixture is SQLite-only."""
    opened = open_store(database_url)
    yield opened
    opened.dispose()
