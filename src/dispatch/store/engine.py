"""Engine set-up for SQLite and PostgreSQL, and the transactions we rely on.

SQLite: WAL, a generous busy timeout, and writes that begin with
``BEGIN IMMEDIATE`` — a deferred read-then-write transaction can fail with
SQLITE_BUSY at once, ignoring the busy timeout.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from dispatch.errors import StoreError
from dispatch.store.migrations import migrate

T = TypeVar("T")
CHUNK = 500  # bound IN (...) lists: SQLite allows 32k variables, PostgreSQL 65k


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in slices of at most ``size``, for IN lists and batched writes."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


# Any constant will do; it only has to be the same for every dispatch process.
MIGRATION_LOCK = 0x64697370


def normalise_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Hand transaction control to us (pysqlite's own BEGIN handling
        # cannot do IMMEDIATE), then set the pragmas every connection needs.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


class Store:
    """A database handle. Every stage's repository takes one of these."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.applied: list[str] = []
        """Migrations this handle applied when it was opened (for the CLI to report)."""

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A short write transaction (BEGIN IMMEDIATE on SQLite)."""
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def insert_ignore(self, table: Table) -> Any:
        """``INSERT … ON CONFLICT DO NOTHING`` for this backend: the tool that
        makes every "do this once" in dispatch idempotent."""
        if self.is_postgres:
            return pg_insert(table).on_conflict_do_nothing()
        return sqlite_insert(table).on_conflict_do_nothing()

    def migrate(self) -> list[str]:
        with self.write() as conn:
            if self.is_postgres:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            self.applied = migrate(conn)
            return self.applied

    def dispose(self) -> None:
        self.engine.dispose()


def open_store(url: str, *, create_dirs: bool = True, run_migrations: bool = True) -> Store:
    url = normalise_url(url)
    try:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if create_dirs and path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = _sqlite_engine(url)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        store = Store(engine)
        if run_migrations:
            store.migrate()
    except ModuleNotFoundError as exc:
        raise StoreError(f"the database driver is not installed ({exc.name}); for PostgreSQL "
                         "install dispatch with the 'postgres' extra") from None
    except OperationalError as exc:
        raise StoreError(f"cannot open the database: {exc.orig}") from None
    except SQLAlchemyError as exc:
        raise StoreError(f"database error: {exc}") from None
    return store


def existing_store(url: str) -> Store | None:
    """The store at ``url`` if it already exists, for checks that must not
    create a database as a side effect: a missing SQLite file or an
    unreachable server means "cannot check"."""
    from dispatch.errors import StoreError

    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if not path or path == ":memory:" or not Path(path).exists():
            return None
    try:
        return open_store(url, create_dirs=False, run_migrations=False)
    except StoreError:
        return None
