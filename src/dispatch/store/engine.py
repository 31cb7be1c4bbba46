"""Engine set-up for SQLite and PostgreSQL, and the transactions we rely on.

SQLite: WAL, a generous busy timeout, and writes that begin with
``BEGIN IMMEDIATE`` — a deferred read-then-write transaction can fail with
SQLITE_BUSY at once, ignoring the busy timeout.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from dispatch.errors import StoreError

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine, Table

T = TypeVar("T")
CHUNK = 500  # bound IN (...) lists: SQLite allows 32k variables, PostgreSQL 65k


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in slices of at most ``size``, for IN lists and batched writes."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


MIGRATION_NAMES = (
    "core_0001_articles", "outbox_0001_subscribers_outbox", "social_0001_social_posts",
    "schedule_0001_runs", "core_0002_article_cache_binary", "social_0002_network_baselines",
    "schedule_0002_firing_leases", "staff_0001_accounts", "bounces_0001_events",
    "subscribers_0002_address_identity", "signup_0001_requests_consents",
    "articles_0001_cache_body_column", "outbox_0002_sent_journal",
    "subscribers_0003_fewer_foreign_keys", "subscribers_0004_email_unique_by_key",
    "subscribers_0005_membership_key_on_postgres",
)
"""The name of every migration (``migrations.MIGRATIONS``, which a test keeps
equal to this): a SQLite store that has them all is opened without
SQLAlchemy, which costs more to import than a warm command takes to run."""

# Any constant will do; it only has to be the same for every dispatch process.
MIGRATION_LOCK = 0x64697370


def normalise_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


DATABASE_URL_EXPECTED = "sqlite:///PATH or postgresql://USER@HOST:5432/NAME"


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot name a dispatch database, found without connecting
    (``dispatch check`` must not create or reach a database); None if it can.
    The message never quotes the URL, which may hold a password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(normalise_url(url))
    except (ArgumentError, ValueError):
        return "the value is not a database URL"
    if parsed.host and "@" in parsed.host:
        # An unencoded "@" in the password: the rest of it became the host,
        # and the driver's error would print it.
        return "an '@' in the user name or password must be written %40"
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        return f"{backend!r} is not a database dispatch can use"
    try:
        parsed.get_dialect().import_dbapi()
    except NoSuchModuleError:
        return f"{parsed.drivername!r} is not a database driver SQLAlchemy knows"
    except ModuleNotFoundError as exc:
        return (f"the database driver is not installed ({exc.name}); for PostgreSQL install "
                "dispatch with the 'postgres' extra")
    return None


def _sqlite_engine(url: str) -> Engine:
    from sqlalchemy import create_engine, event

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


def _make_engine(url: str) -> Engine:
    from sqlalchemy import create_engine

    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True)


def _sqlite_file(url: str) -> str | None:
    """The file of a plain ``sqlite:///PATH`` URL (no driver, no options), else None."""
    if not url.startswith("sqlite:///") or "?" in url:
        return None
    path = url[len("sqlite:///"):]
    return path if path and path != ":memory:" else None


class Store:
    """A database handle. Every stage's repository takes one of these.

    The SQLAlchemy engine is made on first use: a command that only reads a
    few rows of an up-to-date SQLite store (``check``, ``articles`` on a warm
    cache) does it through :meth:`rows` on the standard library's sqlite3 and
    never imports SQLAlchemy, a third of its start-up otherwise.
    """

    def __init__(self, url: str, engine: Engine | None = None) -> None:
        self.url = url
        self._engine = engine
        self._plain: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # stages may read from several threads
        self.applied: list[str] = []
        """Migrations this handle applied when it was opened (for the CLI to report)."""

    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = _make_engine(self.url)
            return self._engine

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def is_postgres(self) -> bool:
        return self.url.startswith("postgresql")

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

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """The rows of one plain ``SELECT`` (``:name`` parameters); see :meth:`stream`."""
        return list(self.stream(sql, params))

    def stream(self, sql: str, params: Mapping[str, Any] | None = None, *,
               batch: int = 1000) -> Iterator[tuple[Any, ...]]:
        """The rows of one plain ``SELECT`` (``:name`` parameters), read as one
        snapshot in batches (never a second copy of a large table in memory);
        any database error is a :class:`StoreError`.

        On a SQLite file it runs on sqlite3 directly, so it works without
        SQLAlchemy; elsewhere it runs on the engine. Values come back as the
        driver gives them: dates on SQLite are text (see :func:`utc`)."""
        path = _sqlite_file(self.url)
        if path is None:
            yield from self._engine_stream(sql, params or {}, batch)
            return
        try:
            with self._lock:
                if self._plain is None:
                    # Autocommit: each statement is its own consistent read.
                    self._plain = sqlite3.connect(path, timeout=30, isolation_level=None,
                                                  check_same_thread=False)
                cursor = self._plain.execute(sql, params or {})
            while True:
                with self._lock:
                    found = cursor.fetchmany(batch)
                if not found:
                    return
                yield from found
        except sqlite3.Error as exc:
            raise StoreError(f"database error: {exc}") from None

    def _engine_stream(self, sql: str, params: Mapping[str, Any],
                       batch: int) -> Iterator[tuple[Any, ...]]:
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self.read() as conn:
                found = conn.execution_options(yield_per=batch).execute(text(sql), dict(params))
                for row in found:
                    yield tuple(row)
        except SQLAlchemyError as exc:
            raise StoreError(f"database error: {exc}") from None

    def insert_ignore(self, table: Table) -> Any:
        """``INSERT … ON CONFLICT DO NOTHING`` for this backend: the tool that
        makes every "do this once" in dispatch idempotent."""
        if self.is_postgres:
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing()
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()

    def migrate(self) -> list[str]:
        from sqlalchemy import text

        from dispatch.store.migrations import migrate

        with self.write() as conn:
            if self.is_postgres:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            self.applied = migrate(conn)
            return self.applied

    def dispose(self) -> None:
        with self._lock:
            if self._plain is not None:
                self._plain.close()
                self._plain = None
            if self._engine is not None:
                self._engine.dispose()


def in_list(name: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """``:name0, :name1, …`` and their values, for an ``IN (…)`` in :meth:`Store.rows`."""
    params = {f"{name}{i}": value for i, value in enumerate(values)}
    return ", ".join(f":{key}" for key in params), params


def utc(value: Any) -> datetime:
    """A date column read by :meth:`Store.rows` as an aware UTC datetime: the
    same value :class:`~dispatch.store.schema.UTCDateTime` gives (SQLite keeps
    it as UTC text without an offset)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _up_to_date(path: str) -> bool:
    """Whether the SQLite file at ``path`` has every migration (read with
    sqlite3, so that finding nothing to do needs no SQLAlchemy)."""
    try:
        with sqlite3.connect(path, timeout=30) as conn:
            done = {row[0] for row in conn.execute("SELECT id FROM schema_migrations")}
        conn.close()
    except sqlite3.Error:
        return False
    return done.issuperset(MIGRATION_NAMES)


def open_store(url: str, *, create_dirs: bool = True, run_migrations: bool = True) -> Store:
    url = normalise_url(url)
    path = _sqlite_file(url)
    if path is not None and Path(path).is_file() and (not run_migrations or _up_to_date(path)):
        return Store(url)
    from sqlalchemy.exc import OperationalError, SQLAlchemyError

    why = url_problem(url)
    if why is not None:
        raise StoreError(f"cannot use the database URL: {why} (expected "
                         f"{DATABASE_URL_EXPECTED})")
    try:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if create_dirs and path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        store = Store(url, _make_engine(url))
        if run_migrations:
            store.migrate()
    except ModuleNotFoundError as exc:
        raise StoreError(f"the database driver is not installed ({exc.name}); for PostgreSQL "
                         "install dispatch with the 'postgres' extra") from None
    except OperationalError as exc:
        raise StoreError(f"cannot open the database: {exc.orig}") from None
    except SQLAlchemyError as exc:
        raise StoreError(f"database error: {exc}") from None
    except OSError as exc:  # the SQLite file's folder cannot be made (a file there, no rights)
        raise StoreError(f"cannot create the database folder: {exc.filename}: "
                         f"{exc.strerror}") from None
    return store


def existing_store(url: str) -> Store | None:
    """The store at ``url`` if it already exists, for checks that must not
    create a database as a side effect: a missing SQLite file or an
    unreachable server means "cannot check"."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if not path or path == ":memory:" or not Path(path).exists():
            return None
    try:
        return open_store(url, create_dirs=False, run_migrations=False)
    except StoreError:
        return None
