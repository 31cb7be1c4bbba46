"""No membership outlives its subscriber when a delete races a writer.

On PostgreSQL list_members has no foreign key to subscribers (schema.py says
why); writers lock the people they add (held_for_membership) and
delete_subscribers deletes memberships after the people. These tests force
each interleaving with two real connections: one side holds its transaction
open at the critical point, the other runs until it has either finished or
is seen waiting on the first (pg_blocking_pids), and only then does the
first commit. Without the locks the writer never waits, and an orphan
membership is left behind.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, func, insert, select, text

from dispatch.signup.forget import forget
from dispatch.store.engine import Store, open_store
from dispatch.store.schema import list_members, subscribers
from dispatch.subscribers import repository
from dispatch.subscribers.csvfile import import_stream

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
ANN = "ann@example.com"


@pytest.fixture
def store(postgres_url: str) -> Iterator[Store]:
    opened = open_store(postgres_url)
    repository.add_subscriber(opened, ANN, "first", T0)
    yield opened
    opened.dispose()


class Side(threading.Thread):
    """A call run on its own connection, its exception kept for the test."""

    def __init__(self, call: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self.call = call
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.call()
        except BaseException as exc:  # the test asserts there was none
            self.error = exc


def _backend(conn: Connection) -> int:
    return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _run_until_done_or_blocked(store: Store, side: Side, holder: int) -> bool:
    """Start ``side``; return once it has finished (False) or is waiting for
    the backend ``holder`` (True). It polls what the server reports rather
    than sleeping a guessed time."""
    side.start()
    waiting = text("SELECT count(*) FROM pg_stat_activity "
                   "WHERE :holder = ANY(pg_blocking_pids(pid))")
    with store.engine.connect() as watch:
        while side.is_alive():
            if watch.execute(waiting, {"holder": holder}).scalar_one():
                return True
            watch.rollback()
            side.join(0.005)
    return False


def _orphans(store: Store) -> int:
    lm, t = list_members, subscribers
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(lm).where(
            ~select(t.c.id).where(t.c.id == lm.c.subscriber_id).exists())).scalar_one())


def _import_ann(store: Store) -> None:
    import_stream(store, io.StringIO(f"email\n{ANN}\nbob@example.com\n"), "race.csv",
                  "second", T0)


def _add_ann(store: Store) -> None:
    repository.add_subscriber(store, ANN, "second", T0)


@pytest.mark.parametrize("writer", [_import_ann, _add_ann], ids=["import", "add"])
def test_a_writer_after_an_uncommitted_delete_waits_and_leaves_no_orphan(
        store: Store, writer: Callable[[Store], None]) -> None:
    with store.write() as deleting:
        assert repository.delete_subscribers(deleting, subscribers.c.email_key == ANN) == 1
        side = Side(lambda: writer(store))
        waited = _run_until_done_or_blocked(store, side, _backend(deleting))
    side.join()
    assert side.error is None
    assert _orphans(store) == 0
    assert waited
    with store.read() as conn:  # the address came back as a new person
        ann = conn.execute(select(subscribers.c.id).where(subscribers.c.email_key == ANN)
                           ).scalar_one()
        lists = set(conn.execute(select(list_members.c.list_name)
                                 .where(list_members.c.subscriber_id == ann)).scalars())
    assert lists == {"second"}


def test_a_forget_after_an_uncommitted_membership_waits_and_takes_it_along(
        store: Store) -> None:
    t = subscribers
    with store.write() as adding:
        repository.ensure_list(adding, store, "second", T0)
        ann = adding.execute(repository.held_for_membership(
            select(t.c.id).where(t.c.email_key == ANN))).scalar_one()
        adding.execute(insert(list_members).values(list_name="second", subscriber_id=ann,
                                                   added_at=T0))
        side = Side(lambda: forget(store, b"k" * 32, ANN, T0))
        waited = _run_until_done_or_blocked(store, side, _backend(adding))
    side.join()
    assert side.error is None
    assert _orphans(store) == 0
    assert waited
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(t)).scalar_one() == 0
