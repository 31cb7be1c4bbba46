"""The state store on a real SQLite file and on the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from tests.sitekit import write_article

from dispatch.config import load_settings
from dispatch.content.loader import load_site
from dispatch.store import open_store
from dispatch.store.articles import StoreCache, first_seen, record_publications
from dispatch.store.migrations import MIGRATIONS
from dispatch.store.schema import published_articles, schema_migrations

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def test_migrations_run_once_and_are_recorded(database_url: str) -> None:
    store = open_store(database_url)
    assert store.migrate() == []  # already applied by open_store
    again = open_store(database_url)
    with again.read() as conn:
        names = list(conn.execute(select(schema_migrations.c.id)).scalars())
    assert sorted(names) == sorted(name for name, _ in MIGRATIONS)
    store.dispose()
    again.dispose()


def test_new_then_unchanged_then_changed(database_url: str, site_root: Path) -> None:
    store = open_store(database_url)
    settings = load_settings(site_root)
    path = write_article(site_root, "a.md", "title: A\ndate: 2026-05-01", "One.\n")
    write_article(site_root, "b.md", "title: B\ndate: 2026-07-01", "Future.\n")
    write_article(site_root, "c.md", "title: C\ndate: 2026-05-01\nstatus: draft", "Draft.\n")

    first = record_publications(store, load_site(settings).articles, NOW)
    assert [a.slug for a in first.new] == ["a"] and first.changed == ()

    again = record_publications(store, load_site(settings).articles, NOW + timedelta(hours=1))
    assert again.new == () and again.changed == ()

    path.write_text(path.read_text().replace("One.", "One, edited."))
    edited = record_publications(store, load_site(settings).articles, NOW + timedelta(hours=2))
    assert edited.new == () and [a.slug for a in edited.changed] == ["a"]

    # The future article becomes new when its date passes, without any edit.
    july = datetime(2026, 7, 2, tzinfo=UTC)
    later = record_publications(store, load_site(settings).articles, july)
    assert [a.slug for a in later.new] == ["b"]
    assert first_seen(store)["a"] == NOW
    store.dispose()


def test_a_second_recorder_racing_sees_nothing_new(database_url: str, site_root: Path) -> None:
    settings = load_settings(site_root)
    write_article(site_root, "a.md", "title: A\ndate: 2026-05-01", "One.\n")
    articles = load_site(settings).articles
    one, two = open_store(database_url), open_store(database_url)
    assert len(record_publications(one, articles, NOW).new) == 1
    assert record_publications(two, articles, NOW).new == ()
    one.dispose()
    two.dispose()


def test_datetimes_come_back_aware_in_utc(database_url: str, site_root: Path) -> None:
    store = open_store(database_url)
    write_article(site_root, "a.md", "title: A\ndate: 2026-05-01T10:00", "One.\n")
    articles = load_site(load_settings(site_root)).articles
    local_now = NOW.astimezone(ZoneInfo("America/New_York"))
    record_publications(store, articles, local_now)
    with store.read() as conn:
        row = conn.execute(select(published_articles)).one()
    assert row.first_seen_at == NOW and row.first_seen_at.tzinfo is not None
    # 10:00 in London (BST) is 09:00 UTC.
    assert row.published_at == datetime(2026, 5, 1, 9, tzinfo=UTC)
    store.dispose()


def test_warm_load_comes_from_the_cache_and_edits_are_seen(database_url: str,
                                                           site_root: Path) -> None:
    store = open_store(database_url)
    settings = load_settings(site_root)
    for index in range(5):
        write_article(site_root, f"a{index}.md", f"title: A{index}\ndate: 2026-05-01",
                      f"Body {index}.\n\n## Key takeaway\n\nYes.\n")
    cold = load_site(settings, StoreCache(store))
    assert cold.from_cache == 0 and len(cold.articles) == 5
    warm = load_site(settings, StoreCache(store))
    assert warm.from_cache == 5 and warm.articles == cold.articles

    edited = site_root / "content" / "a2.md"
    edited.write_text(edited.read_text().replace("Body 2.", "Body two, edited."))
    (site_root / "content" / "a4.md").unlink()
    after = load_site(settings, StoreCache(store))
    assert after.from_cache == 3
    assert "edited" in after.by_slug["a2"].body_html and "a4" not in after.by_slug
    store.dispose()


def test_cached_warnings_are_still_reported(database_url: str, site_root: Path) -> None:
    store = open_store(database_url)
    settings = load_settings(site_root)
    write_article(site_root, "a.md", "title: A\ndate: 2026-05-01\nmood: happy", "No takeaway.\n")
    cold = load_site(settings, StoreCache(store))
    warm = load_site(settings, StoreCache(store))
    assert warm.from_cache == 1
    assert [str(p) for p in warm.problems] == [str(p) for p in cold.problems]
    assert len(warm.warnings) == 2
    store.dispose()


def test_config_change_invalidates_the_cache(tmp_path: Path, site_root: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    write_article(site_root, "a.md", "title: A\ndate: 2026-05-01", "Body.\n")
    load_site(load_settings(site_root), StoreCache(store))
    toml = site_root / "dispatch.toml"
    toml.write_text(toml.read_text().replace("https://journal.test", "https://new.test"))
    result = load_site(load_settings(site_root), StoreCache(store))
    assert result.from_cache == 0
    assert result.articles[0].url == "https://new.test/a/"
    store.dispose()


def test_an_existing_database_gets_later_migrations(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import Column, Integer, MetaData, Table, inspect

    store = open_store(database_url)
    extra = Table("later_feature", MetaData(), Column("id", Integer, primary_key=True))
    monkeypatch.setattr(
        "dispatch.store.migrations.MIGRATIONS",
        [*MIGRATIONS, ("test_0001_later_feature", lambda conn: extra.create(conn))],
    )
    assert store.migrate() == ["test_0001_later_feature"]
    assert store.migrate() == []
    assert "later_feature" in inspect(store.engine).get_table_names()
    with store.write() as conn:
        extra.drop(conn)
    store.dispose()


def test_every_migration_is_named_for_the_quick_open() -> None:
    # open_store skips SQLAlchemy for a SQLite file that has every name in
    # MIGRATION_NAMES: a migration missing from it would never run there.
    from dispatch.store.engine import MIGRATION_NAMES

    assert tuple(name for name, _ in MIGRATIONS) == MIGRATION_NAMES


def test_plain_reads_agree_on_both_databases(database_url: str, site_root: Path) -> None:
    from dispatch.errors import StoreError
    from dispatch.store.articles import slug_holders

    store = open_store(database_url)
    settings = load_settings(site_root)
    write_article(site_root, "a.md", "title: A\ndate: 2026-05-01", "One.\n")
    result = load_site(settings, StoreCache(store))
    record_publications(store, result.articles, NOW)
    assert slug_holders(store) == {"a": "content/a.md"}
    warm = load_site(settings, StoreCache(store))
    assert warm.from_cache == 1 and warm.articles[0].body_html == result.articles[0].body_html
    assert list(store.stream("SELECT slug FROM published_articles WHERE slug = :s",
                             {"s": "a"}, batch=1)) == [("a",)]
    with pytest.raises(StoreError):
        store.rows("SELECT nothing FROM no_such_table")
    store.dispose()


def test_an_up_to_date_sqlite_file_opens_without_an_engine(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    open_store(url).dispose()
    store = open_store(url)
    assert store._engine is None and store.applied == []  # nothing to do, nothing made
    assert store.rows("SELECT count(*) FROM published_articles") == [(0,)]
    store.dispose()
    with open_store(url).write() as conn:  # and the engine comes on first use
        conn.execute(schema_migrations.delete().where(
            schema_migrations.c.id == MIGRATIONS[-1][0]))
    again = open_store(url)  # a migration missing: opened the full way, and applied
    assert again.applied == [MIGRATIONS[-1][0]]
    again.dispose()


@pytest.mark.parametrize("where", ["a-file/state.db", "a-file/deeper/state.db"])
def test_a_database_folder_that_cannot_be_made_is_a_store_error(tmp_path: Path,
                                                                  where: str) -> None:
    # [paths] state or DISPATCH_DATABASE_URL naming a file as the folder: a
    # message naming it, not an OSError traceback from every command.
    from dispatch.errors import StoreError

    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(StoreError, match=r"cannot create the database folder: .*a-file"):
        open_store(f"sqlite:///{tmp_path / where}")


@pytest.mark.parametrize(("url", "why"), [
    ("nonsense://", "'nonsense' is not a database dispatch can use"),
    (":::", "the value is not a database URL"),
    ("mysql://ann:pw@db.example/news", "'mysql' is not a database dispatch can use"),
    # The driver's error would have named the host "pw@db.example".
    ("postgresql://ann:p@pw@db.example/news",
     "an '@' in the user name or password must be written %40"),
])
def test_a_database_url_no_command_can_open_fails_check_too(
        site_root: Path, monkeypatch: pytest.MonkeyPatch, url: str, why: str) -> None:
    """Every command stops on such a URL, so ``dispatch check`` (which opens
    no database) must not call the configuration fine."""
    from click.testing import CliRunner

    from dispatch.cli import main
    from dispatch.errors import StoreError

    with pytest.raises(StoreError, match=f"cannot use the database URL: {why}"):
        open_store(url)
    monkeypatch.setenv("DISPATCH_DATABASE_URL", url)
    result = CliRunner().invoke(main, ["check", "--root", str(site_root)])
    assert result.exit_code == 1, result.output
    assert f"environment variable DISPATCH_DATABASE_URL: {why}" in result.output
    assert "pw" not in result.output and "Traceback" not in result.output
    monkeypatch.delenv("DISPATCH_DATABASE_URL")
    (site_root / "dispatch.toml").write_text(
        (site_root / "dispatch.toml").read_text() + f'\n[database]\nurl = "{url}"\n')
    result = CliRunner().invoke(main, ["check", "--root", str(site_root)])
    assert result.exit_code == 1 and "database.url: " + why in result.output, result.output
