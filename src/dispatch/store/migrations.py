"""Ordered, named migrations; each runs once per database.

A migration is identified by its name, not a number, so stages can add
theirs independently; they run in list order and are recorded in
``schema_migrations``. Never edit a shipped migration: add a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, String, Table, func, insert, inspect, literal, select, text

from dispatch.store import schema

Migration = tuple[str, Callable[[Connection], None]]


def _create(*tables: Table) -> Callable[[Connection], None]:
    def run(conn: Connection) -> None:
        for table in tables:
            table.create(conn)  # indexes declared on the table come with it
    return run


def _create_missing(table: Table) -> Callable[[Connection], None]:
    """Create ``table`` unless it is there: safe to run again on a store whose
    record of the migration was lost (for a table that holds nothing for long)."""
    def run(conn: Connection) -> None:
        table.create(conn, checkfirst=True)
    return run


def _recreate(table: Table) -> Callable[[Connection], None]:
    """For caches only: drop and create again (the next load refills it)."""
    def run(conn: Connection) -> None:
        table.drop(conn, checkfirst=True)
        table.create(conn)
    return run


def _social_baselines(conn: Connection) -> None:
    """Create ``social_networks``; a network that already has posts keeps
    its history: its baseline is its first queued post, so the first pass
    after an upgrade still announces the articles it finds new."""
    schema.social_networks.create(conn)
    t = schema.social_posts
    conn.execute(insert(schema.social_networks).from_select(
        ["name", "first_seen_at"],
        select(t.c.network, func.min(t.c.created_at)).group_by(t.c.network)))


def _add_columns(table: Table, *names: str) -> Callable[[Connection], None]:
    """Add columns declared on ``table`` that an older database lacks (a new
    database got them from the migration that created the table)."""
    def run(conn: Connection) -> None:
        present = {c["name"] for c in inspect(conn).get_columns(table.name)}
        for name in names:
            if name in present:
                continue
            column = table.c[name]
            kind = column.type.compile(dialect=conn.dialect)
            default = column.server_default
            tail = "" if column.nullable else " NOT NULL"
            if default is not None:
                tail += f" DEFAULT {default.arg.text}"  # type: ignore[attr-defined]
            conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{name}" {kind}{tail}'))
    return run


def _address_identity(conn: Connection) -> None:
    """One address, one subscriber: key column, duplicates folded (recorded in
    ``subscriber_merges``), then the key made unique."""
    from dispatch.store.address_identity import address_identity

    _add_columns(schema.subscribers, "email_key")(conn)
    _create(schema.subscriber_merges, schema.subscriber_sources)(conn)
    address_identity(conn)


def _signup_tables(conn: Connection) -> None:
    """Signup, consent, rate-limit and suppression tables. Members already on
    a list get a consent record saying it predates the records (method
    ``unrecorded``, at the time they joined), so every membership has one."""
    for table in (schema.signup_requests, schema.consents, schema.rate_limits,
                  schema.suppressions):
        table.create(conn)
    m = schema.list_members
    conn.execute(insert(schema.consents).from_select(
        ["subscriber_id", "list_name", "given_at", "method"],
        select(m.c.subscriber_id, m.c.list_name, m.c.added_at,
               literal("unrecorded", String()))))


def _rebuild_sqlite(conn: Connection, table: Table) -> None:
    """Make ``table`` again as now declared, keeping its rows: SQLite cannot
    drop a constraint. Only for a table no other table references (renaming
    and dropping it then touches nothing else)."""
    old = f"{table.name}_before_rebuild"
    conn.execute(text(f'ALTER TABLE "{table.name}" RENAME TO "{old}"'))
    for index in table.indexes:
        conn.execute(text(f'DROP INDEX "{index.name}"'))
    table.create(conn)
    names = ", ".join(f'"{column.name}"' for column in table.columns)
    conn.execute(text(f'INSERT INTO "{table.name}" ({names}) SELECT {names} FROM "{old}"'))
    conn.execute(text(f'DROP TABLE "{old}"'))


def _drop_foreign_key(conn: Connection, table: str, column: str, parent: str) -> None:
    """PostgreSQL: drop the key from ``table.column`` to ``parent``, if there."""
    for key in inspect(conn).get_foreign_keys(table):
        if key["constrained_columns"] == [column] and key["referred_table"] == parent:
            conn.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{key["name"]}"'))


def _fewer_foreign_keys(conn: Connection) -> None:
    """Drop the foreign keys consents -> subscribers and list_members ->
    mailing_lists (schema.py says why each is not needed); the rows stay."""
    if conn.dialect.name != "postgresql":
        for table in (schema.consents, schema.list_members):
            _rebuild_sqlite(conn, table)
        return
    _drop_foreign_key(conn, "consents", "subscriber_id", "subscribers")
    _drop_foreign_key(conn, "list_members", "list_name", "mailing_lists")


def _membership_key_on_postgres(conn: Connection) -> None:
    """PostgreSQL: drop the foreign key list_members -> subscribers (see
    ``schema.list_members``); rows and indexes stay. SQLite keeps it."""
    if conn.dialect.name == "postgresql":
        _drop_foreign_key(conn, "list_members", "subscriber_id", "subscribers")


def _email_unique_by_key(conn: Connection) -> None:
    """Drop the unique constraint on subscribers.email (the unique key
    implies it). PostgreSQL only: on SQLite it is part of a table others
    reference, which cannot be rebuilt safely inside a migration's
    transaction; an older SQLite file just keeps the extra index."""
    if conn.dialect.name != "postgresql":
        return
    for unique in inspect(conn).get_unique_constraints("subscribers"):
        if unique["column_names"] == ["email"]:
            conn.execute(text(f'ALTER TABLE subscribers DROP CONSTRAINT "{unique["name"]}"'))


MIGRATIONS: list[Migration] = [
    ("core_0001_articles", _create(schema.published_articles, schema.article_cache)),
    ("outbox_0001_subscribers_outbox", _create(
        schema.subscribers, schema.mailing_lists, schema.list_members, schema.editions,
        schema.outbox)),
    ("social_0001_social_posts", _create(schema.social_posts)),
    ("schedule_0001_runs", _create(schema.schedule_runs, schema.schedule_state)),
    ("core_0002_article_cache_binary", _recreate(schema.article_cache)),
    ("social_0002_network_baselines", _social_baselines),
    ("schedule_0002_firing_leases", _add_columns(schema.schedule_runs, "lease_owner",
                                                 "lease_until", "attempts")),
    ("staff_0001_accounts", _create(schema.staff_accounts, schema.staff_sessions,
                                    schema.staff_login_failures, schema.staff_audit)),
    ("bounces_0001_events", _create(schema.bounce_events, schema.webhook_receipts,
                                    schema.bounce_mailbox_seen)),
    ("subscribers_0002_address_identity", _address_identity),
    ("signup_0001_requests_consents", _signup_tables),
    ("articles_0001_cache_body_column", _recreate(schema.article_cache)),
    ("outbox_0002_sent_journal", _create_missing(schema.outbox_sent)),
    ("subscribers_0003_fewer_foreign_keys", _fewer_foreign_keys),
    ("subscribers_0004_email_unique_by_key", _email_unique_by_key),
    ("subscribers_0005_membership_key_on_postgres", _membership_key_on_postgres),
]


def migrate(conn: Connection) -> list[str]:
    """Apply pending migrations inside the caller's transaction; return their names."""
    schema.schema_migrations.create(conn, checkfirst=True)
    done = set(conn.execute(select(schema.schema_migrations.c.id)).scalars())
    applied: list[str] = []
    for name, run in MIGRATIONS:
        if name in done:
            continue
        run(conn)
        conn.execute(insert(schema.schema_migrations).values(id=name, applied_at=datetime.now(UTC)))
        applied.append(name)
    return applied
