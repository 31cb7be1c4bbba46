"""One active scheduler per database: leader election.

PostgreSQL: the leader holds ``pg_try_advisory_lock`` on a connection of its
own. If the process dies or the connection drops, the server releases the
lock and a standby's next attempt wins. The key is derived from the schema
in use, so two sites sharing one database in separate schemas never block
each other.

SQLite: an exclusive ``flock`` on ``.dispatch/scheduler.lock``. The kernel
drops it when the process dies, so the same take-over works on one host
(SQLite itself is one host). ``flock`` locks belong to the open file, so two
electors in one process exclude each other as two processes would.

Either way the lock is only a guard against wasted work: the unique firing
key in ``schedule_runs`` is what makes a double firing impossible.
"""

from __future__ import annotations

import fcntl
import os
import zlib
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from dispatch.store.engine import Store


class Leadership(Protocol):
    def try_acquire(self) -> bool:
        """Become the leader if nobody is; True while we are."""

    def still_held(self) -> bool:
        """False once leadership was lost (e.g. the database connection dropped)."""

    def release(self) -> None: ...


class PostgresLeadership:
    def __init__(self, store: Store, name: str = "dispatch-scheduler") -> None:
        self.store = store
        self.name = name
        self._conn: Connection | None = None

    def lock_key(self, conn: Connection) -> int:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        # A signed 32-bit value fits pg_try_advisory_lock(bigint) everywhere.
        return zlib.crc32(f"{self.name}:{schema}".encode()) - 2**31

    def try_acquire(self) -> bool:
        if self._conn is not None:
            return self.still_held()
        conn = self.store.engine.connect()
        try:
            # Autocommit: the lock is session-level and no transaction may pin it.
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                    {"k": self.lock_key(conn)}).scalar_one())
        except SQLAlchemyError:
            conn.close()
            return False
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def still_held(self) -> bool:
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            self._drop()
            return False

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()  # never hand a dead session back to the pool
            finally:
                self._conn = None

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute(text("SELECT pg_advisory_unlock_all()"))
            self._conn.close()
        except SQLAlchemyError:
            self._drop()
        self._conn = None


class FileLeadership:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def try_acquire(self) -> bool:
        if self._file is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")  # for people wondering who holds it
        handle.flush()
        self._file = handle
        return True

    def still_held(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def leadership_for(store: Store, state_dir: Path) -> Leadership:
    if store.is_postgres:
        return PostgresLeadership(store)
    database = store.engine.url.database
    if database and database != ":memory:":
        # Beside the database file: whoever shares the database shares the lock.
        return FileLeadership(Path(database + ".scheduler-lock"))
    return FileLeadership(state_dir / "scheduler.lock")
