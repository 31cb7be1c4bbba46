"""The upgrades that drop constraints an import paid for on every row.

consents -> subscribers and list_members -> mailing_lists are gone from the
schema (schema.py says why), and list_members -> subscribers from PostgreSQL;
an existing database loses them too, keeping its rows and indexes, and
deleting a subscriber still deletes their memberships and consent records.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import ForeignKeyConstraint, MetaData, func, insert, inspect, select

from dispatch.store import migrations, schema
from dispatch.store.engine import Store, open_store
from dispatch.subscribers.repository import delete_subscribers

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
MIGRATION = "subscribers_0003_fewer_foreign_keys"


def _old_database(url: str, monkeypatch: pytest.MonkeyPatch) -> Store:
    """A database from before the migration: both tables with their old keys."""
    names = [name for name, _ in migrations.MIGRATIONS]
    monkeypatch.setattr(migrations, "MIGRATIONS",
                        migrations.MIGRATIONS[:names.index(MIGRATION)])
    old = open_store(url)
    monkeypatch.undo()
    former = MetaData()
    for table in (schema.subscribers, schema.mailing_lists):
        table.to_metadata(former)
    members = schema.list_members.to_metadata(former)
    members.append_constraint(ForeignKeyConstraint(
        ["list_name"], ["mailing_lists.name"], ondelete="CASCADE"))
    consents = schema.consents.to_metadata(former)
    consents.append_constraint(ForeignKeyConstraint(
        ["subscriber_id"], ["subscribers.id"], ondelete="CASCADE"))
    with old.write() as conn:
        schema.consents.drop(conn)
        schema.list_members.drop(conn)
        members.create(conn)
        consents.create(conn)
        conn.execute(insert(schema.mailing_lists), [{"name": "main", "created_at": T0}])
        conn.execute(insert(schema.subscribers), [
            {"id": i, "email": f"p{i}@example.com", "email_key": f"p{i}@example.com",
             "status": "active", "created_at": T0, "status_changed_at": T0}
            for i in (1, 2)])
        conn.execute(insert(schema.list_members), [
            {"list_name": "main", "subscriber_id": i, "added_at": T0} for i in (1, 2)])
        conn.execute(insert(schema.consents), [
            {"subscriber_id": i, "list_name": "main", "given_at": T0, "method": "import"}
            for i in (1, 2)])
    assert _keys(old, "consents") == [("subscriber_id", "subscribers")]
    return old


def _keys(store: Store, table: str) -> list[tuple[str, str]]:
    with store.read() as conn:
        return sorted((",".join(k["constrained_columns"]), k["referred_table"])
                      for k in inspect(conn).get_foreign_keys(table))


def _membership_keys(store: Store) -> list[tuple[str, str]]:
    """What list_members should keep: its key to subscribers on SQLite only."""
    return [] if store.is_postgres else [("subscriber_id", "subscribers")]


def _count(store: Store, table: schema.Table) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_an_existing_database_loses_the_two_keys_and_keeps_its_rows(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _old_database(database_url, monkeypatch).dispose()
    store = open_store(database_url)  # runs the migration
    assert _keys(store, "consents") == []
    assert _keys(store, "list_members") == _membership_keys(store)
    assert _count(store, schema.list_members) == 2
    assert _count(store, schema.consents) == 2
    with store.read() as conn:
        indexes = {i["name"] for table in ("consents", "list_members")
                   for i in inspect(conn).get_indexes(table)}
    assert {"ix_consents_subscriber", "ix_list_members_subscriber"} <= indexes
    # A new consent still gets the next id; deleting a subscriber takes their
    # membership and their consent along (delete_subscribers).
    with store.write() as conn:
        conn.execute(insert(schema.consents), [
            {"subscriber_id": 2, "list_name": "main", "given_at": T0, "method": "cli"}])
        assert delete_subscribers(conn, schema.subscribers.c.id == 1) == 1
    with store.read() as conn:
        left = sorted(conn.execute(select(schema.consents.c.id,
                                          schema.consents.c.subscriber_id)).all())
        members = list(conn.execute(select(schema.list_members.c.subscriber_id)).scalars())
    assert [sid for _, sid in left] == [2, 2] and left[-1][0] == 3
    assert members == [2]
    store.dispose()


def test_a_new_database_has_only_the_keys_still_declared(store: Store) -> None:
    assert _keys(store, "consents") == []
    assert _keys(store, "list_members") == _membership_keys(store)


def test_the_spelling_stays_unique_through_its_key(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """subscribers.email lost its own unique constraint (an index to write
    per imported row): an upgraded PostgreSQL database drops it, and the
    same spelling twice is still refused, by the unique key."""
    from sqlalchemy.exc import IntegrityError
    from sqlalchemy.schema import AddConstraint, UniqueConstraint

    names = [name for name, _ in migrations.MIGRATIONS]
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[
        :names.index("subscribers_0004_email_unique_by_key")])
    old = open_store(database_url)
    monkeypatch.undo()
    if old.is_postgres:  # as an older database has it
        with old.write() as conn:
            conn.execute(AddConstraint(UniqueConstraint(
                schema.subscribers.c.email, name="subscribers_email_key")))
    old.dispose()
    store = open_store(database_url)
    with store.read() as conn:
        uniques = [u["column_names"] for u in inspect(conn).get_unique_constraints("subscribers")]
    assert ["email"] not in uniques
    person = {"email": "ann@example.com", "email_key": "ann@example.com", "status": "active",
              "created_at": T0, "status_changed_at": T0}
    with store.write() as conn:
        conn.execute(insert(schema.subscribers), [person])
    with pytest.raises(IntegrityError), store.write() as conn:
        conn.execute(insert(schema.subscribers), [person])
    store.dispose()


def test_a_database_of_the_last_release_drops_the_membership_key_on_postgres(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    names = [name for name, _ in migrations.MIGRATIONS]
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[
        :names.index("subscribers_0005_membership_key_on_postgres")])
    old = open_store(database_url)
    monkeypatch.undo()
    assert _keys(old, "list_members") == [("subscriber_id", "subscribers")]
    with old.write() as conn:
        conn.execute(insert(schema.mailing_lists), [{"name": "main", "created_at": T0}])
        conn.execute(insert(schema.subscribers), [
            {"id": i, "email": f"p{i}@example.com", "email_key": f"p{i}@example.com",
             "status": "active", "created_at": T0, "status_changed_at": T0}
            for i in (1, 2, 3)])
        conn.execute(insert(schema.list_members), [
            {"list_name": "main", "subscriber_id": i, "added_at": T0} for i in (1, 2, 3)])
    old.dispose()
    store = open_store(database_url)
    assert _keys(store, "list_members") == _membership_keys(store)
    with store.write() as conn:
        indexes = {i["name"] for i in inspect(conn).get_indexes("list_members")}
        assert "ix_list_members_subscriber" in indexes
        assert delete_subscribers(conn, schema.subscribers.c.id.in_([1, 3])) == 2
    with store.read() as conn:
        members = list(conn.execute(select(schema.list_members.c.subscriber_id)).scalars())
    assert members == [2]
    store.dispose()
