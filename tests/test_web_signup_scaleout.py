"""The signup limits hold across two real `dispatch serve` processes sharing
one PostgreSQL database: one confirmation per address per hour, and the
per-network limit, whichever process each request reaches, all at once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from tests.signup_kit import confirmations, form_token
from tests.web_kit import SECRET, dispatch_serve

from dispatch.store import open_store
from dispatch.store.schema import signup_requests

ANN = "ann.limit@example.com"
PER_NETWORK = 6
DEADLINE_S = 60.0


@pytest.fixture
def two_servers(example_site: Path, postgres_url: str) -> Iterator[tuple[Path, list[str], str]]:
    toml = example_site / "dispatch.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        'confirm_within = "7d"',
        f'confirm_within = "7d"\nmin_submit_seconds = 0\nsignups_per_ip = {PER_NETWORK}'),
        encoding="utf-8")
    env = {"DISPATCH_SECRET_KEY": SECRET, "DISPATCH_DATABASE_URL": postgres_url}
    with ExitStack() as stack:
        bases = [stack.enter_context(dispatch_serve(example_site, env)) for _ in range(2)]
        yield example_site, bases, postgres_url


def signup(base: str, address: str) -> httpx.Response:
    """A browser's visit: show the form (cookie + token), post it back."""
    with httpx.Client(base_url=base, timeout=30) as client:
        page = client.get("/subscribe")
        return client.post("/subscribe", data={"email": address, "lists": ["weekly"],
                                               "form_token": form_token(page.text)})


def test_limits_hold_across_two_serve_processes_on_postgres(two_servers) -> None:  # type: ignore[no-untyped-def]
    root, bases, url = two_servers
    attempts = PER_NETWORK + 4
    with ThreadPoolExecutor(max_workers=attempts) as pool:
        replies = list(pool.map(lambda i: signup(bases[i % 2], ANN), range(attempts)))
    codes = sorted(r.status_code for r in replies)
    assert codes == [200] * PER_NETWORK + [429] * (attempts - PER_NETWORK)
    for reply in replies:
        if reply.status_code == 429:
            assert 0 < int(reply.headers["Retry-After"]) <= 3600
    store = open_store(url)
    try:
        deadline = time.monotonic() + DEADLINE_S
        while True:  # the confirmations are sent after each response
            with store.read() as conn:
                open_ = conn.execute(select(func.count()).select_from(signup_requests)
                                     .where(signup_requests.c.processed_at.is_(None))
                                     ).scalar_one()
            if open_ == 0:
                break
            assert time.monotonic() < deadline, "requests never processed"
            time.sleep(0.05)  # polling
        with store.read() as conn:
            outcomes = sorted(conn.execute(select(signup_requests.c.outcome)).scalars())
    finally:
        store.dispose()
    assert outcomes == ["limited"] * (PER_NETWORK - 1) + ["sent"]
    # The decision is recorded before the message goes out (so a crash never
    # sends twice): wait for the one confirmation to land in the maildir.
    while not confirmations(root, ANN):
        assert time.monotonic() < deadline, "the confirmation was never sent"
        time.sleep(0.05)  # polling
    assert len(confirmations(root, ANN)) == 1

