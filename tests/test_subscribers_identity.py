"""One person is one subscriber: every spelling of an address is one identity,
suppression follows it everywhere, and the upgrade folds existing duplicates."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, insert, select, text
from tests.delivery_kit import T0, edition
from tests.sitekit import SITE_TOML

from dispatch.cli import main
from dispatch.outbox.queue import queue_edition
from dispatch.store import migrations, open_store
from dispatch.store.engine import Store
from dispatch.store.schema import list_members, outbox, subscriber_merges, subscribers
from dispatch.subscribers import (
    add_subscriber,
    change_status,
    get_subscriber,
    import_csv,
    remove_from_list,
)
from dispatch.unsubscribe import make_token, unsubscribe

SPELLINGS = ("Bob@Example.com", "bob@example.com", "BOB@EXAMPLE.COM")
KEY = b"k" * 32


def count(store: Store) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(subscribers)).scalar_one())


def write(tmp_path: Path, body: str, name: str = "people.csv") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def test_three_spellings_import_as_one_keeping_the_first(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "email,name\n" + "".join(f"{s},\n" for s in SPELLINGS))
    report = import_csv(store, path, "main", T0)
    assert (report.rows, report.created, report.merged) == (1, 1, 2)
    assert count(store) == 1
    for spelling in SPELLINGS:
        person = get_subscriber(store, spelling)
        assert person is not None and person.email == "Bob@Example.com"
    # A later file in another spelling is the same person, not a new one.
    again = import_csv(store, write(tmp_path, "email\nbOb@eXample.COM\n", "b.csv"), "other", T0)
    assert (again.created, count(store)) == (0, 1)
    person, created = add_subscriber(store, "BOB@example.com", "third", T0)
    assert not created and person.email == "Bob@Example.com"


def test_internationalised_domain_spellings_are_one(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "email\nkim@bücher.example\nKIM@xn--bcher-kva.example\n")
    report = import_csv(store, path, "main", T0)
    assert (report.created, report.merged) == (1, 1)
    person = get_subscriber(store, "Kim@BÜCHER.example")
    assert person is not None and person.email == "kim@xn--bcher-kva.example"


def _queued_for(store: Store, edition_id: str) -> int:
    return queue_edition(store, edition(edition_id), ["main"], T0).queued


@pytest.mark.parametrize("removed_as", SPELLINGS)
def test_remove_in_any_spelling_stops_every_spelling(store: Store, tmp_path: Path,
                                                       removed_as: str) -> None:
    import_csv(store, write(tmp_path, "email\n" + "\n".join(SPELLINGS) + "\n"), "main", T0)
    person = get_subscriber(store, removed_as)
    assert person is not None
    change_status(store, [person.id], "unsubscribed", T0, "removed by operator")
    assert _queued_for(store, "digest-1") == 0


@pytest.mark.parametrize("status", ["unsubscribed", "bounced", "complained"])
@pytest.mark.parametrize("reimported_as", ["bob@example.com", "BOB@EXAMPLE.COM"])
def test_suppression_survives_a_reimport_in_another_case(
        store: Store, tmp_path: Path, status: str, reimported_as: str) -> None:
    person, _ = add_subscriber(store, "Bob@Example.com", "main", T0)
    if status == "unsubscribed":
        # The one-click route: by token, then by address in another case.
        assert unsubscribe(store, make_token(KEY, person.id, "main"), T0, key=KEY)
    else:
        change_status(store, [person.id], status, T0)  # type: ignore[arg-type]
    body = f"email,name,status\n{reimported_as},Bob,active\n"
    report = import_csv(store, write(tmp_path, body), "main", T0)
    assert (report.created, report.kept_suppressed) == (0, 1)
    assert get_subscriber(store, reimported_as).status == status  # type: ignore[union-attr]
    assert _queued_for(store, "after-reimport") == 0


def test_unsubscribe_by_address_in_another_case(store: Store) -> None:
    add_subscriber(store, "Bob@Example.com", "main", T0)
    assert unsubscribe(store, "BOB@example.COM", T0)
    assert get_subscriber(store, "bob@example.com").status == "unsubscribed"  # type: ignore[union-attr]


def test_remove_from_list_in_another_case(store: Store) -> None:
    add_subscriber(store, "Bob@Example.com", "main", T0)
    assert remove_from_list(store, "bob@EXAMPLE.com", "main")
    assert _queued_for(store, "after-remove") == 0


# --- the upgrade -------------------------------------------------------------

def _old_database(url: str, monkeypatch: pytest.MonkeyPatch) -> Store:
    """A database as it was before the identity key: same-address rows allowed."""
    names = [name for name, _ in migrations.MIGRATIONS]
    monkeypatch.setattr(migrations, "MIGRATIONS",
                        migrations.MIGRATIONS[:names.index("subscribers_0002_address_identity")])
    old = open_store(url)
    monkeypatch.undo()
    with old.write() as conn:
        conn.execute(text("DROP INDEX ux_subscribers_email_key"))
        conn.execute(text("ALTER TABLE subscribers DROP COLUMN email_key"))
    return old


def _person(sid: int, email: str, status: str, name: str = "", fields: str = "{}",
            reason: str | None = None) -> dict[str, object]:
    return {"id": sid, "email": email, "name": name, "status": status, "fields": fields,
            "t": T0.replace(tzinfo=None), "status_reason": reason}


def test_upgrade_merges_duplicates_keeping_the_most_restrictive(
        database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    old = _old_database(database_url, monkeypatch)
    with old.write() as conn:
        conn.execute(text("INSERT INTO mailing_lists (name, created_at) VALUES "
                          "('main', :t), ('weekly', :t)"), {"t": T0.replace(tzinfo=None)})
        # email_key is gone from this database: insert the old columns only.
        conn.execute(text(
            "INSERT INTO subscribers (id, email, name, status, fields, created_at, "
            "status_changed_at, status_reason) VALUES (:id, :email, :name, :status, :fields, "
            ":t, :t, :status_reason)"), [
                _person(1, "Bob@Example.com", "active", fields='{"city": "Leeds"}'),
                _person(2, "bob@example.com", "unsubscribed", "Bob", reason="unsubscribe link"),
                _person(3, "BOB@EXAMPLE.COM", "bounced", fields='{"city": "York", "vip": "y"}',
                        reason="550 no such user"),
                _person(4, "ann@example.com", "active", "Ann")])
        conn.execute(insert(list_members), [
            {"list_name": "main", "subscriber_id": 1, "added_at": T0},
            {"list_name": "weekly", "subscriber_id": 2, "added_at": T0},
            {"list_name": "main", "subscriber_id": 3, "added_at": T0},
            {"list_name": "main", "subscriber_id": 4, "added_at": T0}])
    # Two editions: e1 reached two spellings (history), e2 is still queued for one.
    with old.write() as conn:
        conn.execute(text(
            "INSERT INTO editions (edition_id, kind, subject, body, audience, state, total, "
            "skipped, queued_at, updated_at) VALUES ('e1','article','s','{}','[]','sending',0,0,"
            ":t,:t), ('e2','article','s','{}','[]','sending',0,0,:t,:t)"),
            {"t": T0.replace(tzinfo=None)})
        conn.execute(insert(outbox), [
            {"edition_id": "e1", "subscriber_id": 1, "status": "sent", "available_at": T0},
            {"edition_id": "e1", "subscriber_id": 2, "status": "sent", "available_at": T0},
            {"edition_id": "e2", "subscriber_id": 1, "status": "queued", "available_at": T0}])
    old.dispose()

    # Opening the database runs the upgrade; the CLI says what it merged.
    site = tmp_path / "site"
    (site / "content").mkdir(parents=True)
    (site / "dispatch.toml").write_text(SITE_TOML, encoding="utf-8")
    monkeypatch.setenv("DISPATCH_DATABASE_URL", database_url)
    out = CliRunner().invoke(main, ["subscribers", "list", "--root", str(site)])
    assert out.exit_code == 0, out.output
    assert "2 subscriber row(s) were other spellings" in out.output
    assert "BOB@EXAMPLE.COM (bounced) -> Bob@Example.com (now bounced)" in out.output

    store = open_store(database_url)
    bob = get_subscriber(store, "bob@example.com")
    assert bob is not None and bob.id == 1 and bob.email == "Bob@Example.com"
    assert (bob.status, bob.status_reason, bob.name) == ("bounced", "550 no such user", "Bob")
    assert bob.fields == {"city": "Leeds", "vip": "y"}  # the first spelling wins a field
    with store.read() as conn:
        lists = set(conn.execute(select(list_members.c.list_name)
                                 .where(list_members.c.subscriber_id == 1)).scalars())
        rows = conn.execute(select(outbox.c.edition_id, outbox.c.subscriber_id,
                                   outbox.c.status).order_by(outbox.c.edition_id)).all()
        merges = conn.execute(select(subscriber_merges.c.merged_email,
                                     subscriber_merges.c.merged_status,
                                     subscriber_merges.c.kept_email, subscriber_merges.c.status)
                              .order_by(subscriber_merges.c.merged_id)).all()
    assert lists == {"main", "weekly"}
    # One person got e1 once in the history; e2 no longer goes to a bounced address.
    assert [tuple(r) for r in rows] == [("e1", 1, "sent"), ("e2", 1, "suppressed")]
    assert [tuple(m) for m in merges] == [
        ("bob@example.com", "unsubscribed", "Bob@Example.com", "bounced"),
        ("BOB@EXAMPLE.COM", "bounced", "Bob@Example.com", "bounced")]
    assert count(store) == 2
    ann = get_subscriber(store, "ANN@example.com")
    assert ann is not None and ann.status == "active"
    # The key is unique from now on, and `subscribers merges` lists the folds.
    _, created = add_subscriber(store, "bOB@example.com", "main", T0)
    assert not created and count(store) == 2
    store.dispose()
    listed = CliRunner().invoke(main, ["subscribers", "merges", "--root", str(site)])
    assert listed.exit_code == 0 and "2 row(s) merged" in listed.output
    assert "spellings" not in listed.output  # reported once, by the upgrade


def test_fresh_database_reports_no_merges(database_url: str, site_root: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCH_DATABASE_URL", database_url)
    out = CliRunner().invoke(main, ["subscribers", "merges", "--root", str(site_root)])
    assert out.exit_code == 0 and "no subscribers were merged" in out.output


# --- CSV: formulas, headers and separators ----------------------------------

FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+2", "-3", "@SUM(A1)",
            "\tTabbed", "\rReturn", "'quoted already", "plain", "a=b"]


@pytest.mark.parametrize("cell", FORMULAS)
def test_export_escapes_formulas_and_import_gives_them_back(
        store: Store, tmp_path: Path, cell: str) -> None:
    import csv as csv_module
    import io

    from dispatch.subscribers import export_csv, find_subscribers

    name = "Ann" if "\r" in cell else cell  # a line break is never a valid name
    add_subscriber(store, "ann@example.com", "main", T0, name=name, fields={"note": cell})
    exported = export_csv(find_subscribers(store))
    row = next(r for r in csv_module.reader(io.StringIO(exported, newline=""))
               if r[0] == "ann@example.com")
    dangerous = cell[:1] in ("=", "+", "-", "@", "\t", "\r")
    assert row[3] == ("'" + cell if dangerous else cell)
    other = open_store(f"sqlite:///{tmp_path / 'other.db'}")
    import_csv(other, write(tmp_path, exported), "main", T0)
    back = get_subscriber(other, "ann@example.com")
    other.dispose()
    # The name is stripped on import like every cell; what matters is the text.
    assert back is not None and back.fields == {"note": cell.strip()}
    assert back.name == name.strip()


def test_an_address_starting_with_a_dash_round_trips(store: Store, tmp_path: Path) -> None:
    from dispatch.subscribers import export_csv, find_subscribers

    add_subscriber(store, "-bob@example.com", "main", T0)
    exported = export_csv(find_subscribers(store))
    assert "'-bob@example.com" in exported
    other = open_store(f"sqlite:///{tmp_path / 'other.db'}")
    import_csv(other, write(tmp_path, exported), "main", T0)
    assert get_subscriber(other, "-bob@example.com") is not None
    other.dispose()


@pytest.mark.parametrize("header", ["email", "Email", "E-mail", "e-mail", "mail", "MAIL",
                                    "Email Address", "email address", "email_address",
                                    " E-Mail Address ", "Mail Address", "EmailAddress"])
@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_common_headers_and_separators(store: Store, tmp_path: Path, header: str,
                                       sep: str) -> None:
    body = f"{header}{sep}Name{sep}City\nann@example.com{sep}Ann{sep}Leeds\n" \
           f"bob@example.com{sep}\"Bob; Jr, \"\"B\"\"\"{sep}\n"
    report = import_csv(store, write(tmp_path, body), "main", T0)
    assert (report.rows, report.created) == (2, 2)
    ann = get_subscriber(store, "ann@example.com")
    assert ann is not None and ann.name == "Ann" and ann.fields == {"city": "Leeds"}
    bob = get_subscriber(store, "bob@example.com")
    assert bob is not None and bob.name == 'Bob; Jr, "B"'


@pytest.mark.parametrize(("body", "says"), [
    ("courriel electronique,nom\nann@example.com,Ann\n",
     "header not understood: no address column among 'courriel electronique', 'nom'"),
    ("contact;who\nann@example.com;Ann\n",
     "no address column among 'contact', 'who' (read as semicolon-separated)"),
    ("e-mail\twho\nann@example.com\tAnn\n", None),
    ("email|name\nann@example.com|Ann\n",
     "separator not understood: the first line 'email|name' seems to be separated by '|'"),
])
def test_unknown_header_or_separator_is_named_once(store: Store, tmp_path: Path, body: str,
                                                   says: str | None) -> None:
    from dispatch.errors import InputError

    path = write(tmp_path, body)
    if says is None:  # the control: a known header with a tab imports
        assert import_csv(store, path, "main", T0).created == 1
        return
    with pytest.raises(InputError) as info:
        import_csv(store, path, "main", T0, skip_invalid=True)
    problems = info.value.problems
    assert len(problems) == 1 and says in problems[0].message
    assert problems[0].line == 1 and problems[0].field == "header"
    assert "exactly one @" not in str(info.value) and count(store) == 0


def test_a_million_bad_rows_are_reported_in_bounded_form(store: Store, tmp_path: Path) -> None:
    from dispatch.errors import InputError
    from dispatch.subscribers.csvfile import MAX_PROBLEMS

    body = "email\n" + "".join(f"nobody{i}\n" for i in range(MAX_PROBLEMS + 50))
    with pytest.raises(InputError) as info:
        import_csv(store, write(tmp_path, body), "main", T0)
    problems = info.value.problems
    assert len(problems) == MAX_PROBLEMS + 1
    assert "and 50 more invalid row(s)" in problems[-1].message


def test_cli_export_streams_escaped_cells(database_url: str, site_root: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCH_DATABASE_URL", database_url)
    people = site_root / "people.csv"
    people.write_text("Email Address;Name;Note\nann@example.com;=1+2;@cmd\n"
                      "bob@example.com;Bob;\n", encoding="utf-8")
    runner = CliRunner()
    root = ["--root", str(site_root)]
    assert runner.invoke(main, ["subscribers", "import", str(people), "--list", "main",
                                *root]).exit_code == 0
    out = site_root / "out.csv"
    done = runner.invoke(main, ["subscribers", "export", "--list", "main", "-o", str(out),
                                *root])
    assert done.exit_code == 0 and "wrote 2 subscriber(s)" in done.output
    assert out.read_bytes().decode() == ("email,name,status,note\r\n"
                                         "ann@example.com,'=1+2,active,'@cmd\r\n"
                                         "bob@example.com,Bob,active,\r\n")
    to_stdout = runner.invoke(main, ["subscribers", "export", "--list", "main", *root])
    assert "'=1+2" in to_stdout.output
    missing = runner.invoke(main, ["subscribers", "export", "--list", "nope", *root])
    assert missing.exit_code == 1 and "no list named nope" in missing.output
