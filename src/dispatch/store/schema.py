"""Every table dispatch keeps, in one MetaData.

Tables are created only by migrations (see ``migrations.py``), never by
``create_all``, so an existing database always has a path forward.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

metadata = MetaData()


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend.

    SQLite keeps no offset, so a naive value read back would silently be
    "local"; storing UTC and re-attaching it keeps time a parameter we trust.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


schema_migrations = Table(
    "schema_migrations", metadata,
    Column("id", String(100), primary_key=True),
    Column("applied_at", UTCDateTime(), nullable=False),
)

# One row per article ever seen published: "newly published" means "no row
# here yet", everywhere in the system.
published_articles = Table(
    "published_articles", metadata,
    Column("slug", String(200), primary_key=True),
    Column("source", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("published_at", UTCDateTime(), nullable=False),
    Column("first_seen_at", UTCDateTime(), nullable=False),
    Column("changed_at", UTCDateTime(), nullable=False),
)

article_cache = Table(
    "article_cache", metadata,
    Column("source", Text, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("article", Text, nullable=False),
    Column("warnings", Text, nullable=False),
)

# Later stages add their tables below, each with a migration.
