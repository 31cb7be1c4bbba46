"""Where the unsubscribe key may come from.

On PostgreSQL (several machines, each with its own ``.dispatch/``) a
per-machine development key would make every link a worker signs fail on the
web app, so ``dispatch serve``, ``dispatch worker`` and ``dispatch run`` refuse
to start without DISPATCH_SECRET_KEY: a clean error, exit code 1, no
traceback, nothing sent. On the embedded SQLite default the development key
in ``.dispatch/secret`` still works out of the box, and ``dispatch check``
warns about it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import update
from starlette.testclient import TestClient
from tests.web_kit import (
    FORM_BODY,
    FORM_TYPE,
    PEOPLE,
    REPO,
    SECRET,
    WebSite,
    client,
    dispatch_serve,
    make_site,
)

from dispatch.config import load_settings
from dispatch.errors import ConfigError
from dispatch.outbox import edition_status
from dispatch.store import open_store
from dispatch.store.schema import outbox
from dispatch.unsubscribe import (
    SECRET_ENV,
    make_token,
    require_secret_key,
    secret_key,
    secret_key_problems,
)
from dispatch.web.app import create_app

DISPATCH = REPO / ".venv" / "bin" / "dispatch"


@pytest.fixture
def pg_site(example_site: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[WebSite]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    made = make_site(example_site, postgres_url)
    yield made
    made.store.dispose()


def without_key(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != SECRET_ENV}
    return {**env, **extra}


def dispatch(root: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # A command that wrongly starts (serve, worker) would run until the
    # timeout, which then fails the test.
    return subprocess.run([str(DISPATCH), *args, "--root", str(root)], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.postgres
@pytest.mark.parametrize("command", [("serve", "--port", "0"), ("worker",),
                                     ("worker", "--burst"), ("run", "--once"),
                                     ("run", "--interval", "3600")])
def test_on_postgres_long_running_commands_refuse_to_start_without_the_key(
        pg_site: WebSite, command: tuple[str, ...]) -> None:
    url = pg_site.store.engine.url.render_as_string(False)
    result = dispatch(pg_site.root, *command, env=without_key(DISPATCH_DATABASE_URL=url))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"error: {SECRET_ENV} is not set" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (pg_site.root / ".dispatch" / "secret").exists()  # no development key made
    status = edition_status(pg_site.store, pg_site.edition_id)
    assert (status.sent, status.pending) == (0, len(PEOPLE))  # nothing signed, nothing sent


@pytest.mark.postgres
def test_on_postgres_a_worker_with_the_key_starts_and_sends(pg_site: WebSite) -> None:
    url = pg_site.store.engine.url.render_as_string(False)
    with pg_site.store.write() as conn:  # queued at a fixed test date: make the rows due now
        conn.execute(update(outbox).values(available_at=datetime(2000, 1, 1, tzinfo=UTC)))
    result = dispatch(pg_site.root, "worker", "--burst",
                      env=without_key(DISPATCH_DATABASE_URL=url, **{SECRET_ENV: SECRET}))
    assert result.returncode == 0, result.stderr
    assert edition_status(pg_site.store, pg_site.edition_id).sent == len(PEOPLE)


def test_require_secret_key_only_on_postgres(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        require_secret_key(store, {})  # the embedded default: the development key will do
    finally:
        store.dispose()


@pytest.mark.postgres
def test_require_secret_key_refuses_postgres_without_it(postgres_url: str) -> None:
    store = open_store(postgres_url)
    try:
        with pytest.raises(ConfigError, match=SECRET_ENV):
            require_secret_key(store, {})
        require_secret_key(store, {SECRET_ENV: "shared"})
    finally:
        store.dispose()


def test_check_is_quiet_about_the_development_key_on_sqlite(site_root: Path) -> None:
    # On the embedded default every process shares .dispatch/secret: nothing to warn about.
    settings = load_settings(site_root, environ={})
    assert secret_key_problems(settings, {}) == []


def test_check_reports_an_error_on_postgres_without_the_key(site_root: Path) -> None:
    env = {"DISPATCH_DATABASE_URL": "postgresql://dispatch@db.internal/dispatch"}
    settings = load_settings(site_root, environ=env)
    [problem] = secret_key_problems(settings, {})
    assert problem.is_error and problem.field == SECRET_ENV and "refuse" in str(problem)
    assert secret_key_problems(settings, {SECRET_ENV: "set"}) == []


def test_on_sqlite_serve_still_works_with_the_development_key(
        example_site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    site = make_site(example_site, f"sqlite:///{tmp_path / 'web.db'}")
    monkeypatch.delenv(SECRET_ENV)
    try:
        dev_key = secret_key(site.settings)  # what serve will find in .dispatch/secret
        bob = site.ids[PEOPLE[1][0]]
        token = make_token(dev_key, bob, site.edition_id)
        assert dev_key != site.key
        env = {"DISPATCH_DATABASE_URL": str(site.store.engine.url.render_as_string(False))}
        with dispatch_serve(site.root, env) as base, client(base) as http:
            done = http.post(f"/unsubscribe/{token}", content=FORM_BODY,
                             headers={"Content-Type": FORM_TYPE})
            assert done.status_code == 200
        assert site.status(PEOPLE[1][0]) == "unsubscribed"
        # In-process too: the app verifies with the same development key.
        alice = make_token(dev_key, site.ids[PEOPLE[0][0]], site.edition_id)
        with TestClient(create_app(site.settings, site.store)) as http:
            assert http.post(f"/unsubscribe/{alice}").status_code == 200
        assert site.status(PEOPLE[0][0]) == "unsubscribed"
    finally:
        site.store.dispose()
