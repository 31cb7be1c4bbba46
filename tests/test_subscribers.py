"""Subscribers and lists: addresses, all-or-nothing CSV import, statuses, CLI."""

from __future__ import annotations

import csv as csv_module
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from tests.delivery_kit import T0

from dispatch.cli import main
from dispatch.config import load_settings
from dispatch.errors import InputError
from dispatch.signup.consent import consents_of
from dispatch.store import open_store
from dispatch.store.engine import Store
from dispatch.store.schema import subscribers
from dispatch.subscribers import (
    InvalidAddress,
    add_subscriber,
    change_status,
    export_csv,
    find_subscribers,
    get_subscriber,
    import_csv,
    list_names,
    normalise_email,
)


def count(store: Store) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(subscribers)).scalar_one())


@pytest.mark.parametrize(("raw", "expected"), [
    ("  Ann@Example.COM ", "Ann@Example.COM"),
    ("<bob@example.org>", "bob@example.org"),
    ("o'neil+news@sub.example.co.uk", "o'neil+news@sub.example.co.uk"),
    ("zoë@bücher.example", None),  # non-ASCII local part: refused
    ("kim@bücher.example", "kim@xn--bcher-kva.example"),
])
def test_normalise(raw: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(InvalidAddress):
            normalise_email(raw)
    else:
        assert normalise_email(raw) == expected


@pytest.mark.parametrize("raw", ["", "no-at-sign", "a@b@c.com", "@example.com", "ann@",
                                 "ann@example", "ann smith@example.com", "ann@-bad-.com",
                                 "ann..x@example.com", "ann@example.123"])
def test_invalid_addresses_say_why(raw: str) -> None:
    with pytest.raises(InvalidAddress) as info:
        normalise_email(raw)
    assert str(info.value)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "people.csv"
    path.write_text(text, encoding="utf-8")
    return path


BAD = """email,name,city
ann@example.com,Ann,Leeds
not-an-address,Bob,York
carl@example.com,Carl,Hull
"dee@example.com","Dee ""D"" Smith","Bath
Somerset"
eve@example,Eve,Ely
"fay@example.com","Fay
Jones",Ely
"""


def test_import_is_all_or_nothing_with_line_numbers(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, BAD)
    with pytest.raises(InputError) as info:
        import_csv(store, path, "main", T0)
    problems = info.value.problems
    # Dee's quoted city spans lines 5-6, so Eve's row is line 7; Fay's name
    # has a line break (it would become header injection in To:).
    assert [(p.line, p.field) for p in problems] == [(3, "email"), (7, "email"), (8, "name")]
    assert str(problems[0]).startswith(f"{path}:3: email: ")
    # The hint is given once, not once by the address check and again by the file.
    assert all(str(p).count("(expected") == 1 for p in problems)
    assert "'eve@example' has an invalid domain" in str(problems[1])
    assert str(problems[1]).endswith("(expected a domain like example.com after the @)")
    assert count(store) == 0 and list_names(store) == []


def test_skip_invalid_imports_the_rest(store: Store, tmp_path: Path) -> None:
    report = import_csv(store, write(tmp_path, BAD), "main", T0, skip_invalid=True)
    assert report.created == 3 and len(report.problems) == 3
    assert all(not p.is_error for p in report.problems)
    dee = get_subscriber(store, "dee@example.com")
    assert dee is not None and dee.name == 'Dee "D" Smith'
    assert dee.fields == {"city": "Bath\nSomerset"}
    carl = get_subscriber(store, "carl@example.com")
    assert carl is not None and carl.fields == {"city": "Hull"}


def test_duplicates_merge_and_domains_fold(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "email,name\nann@EXAMPLE.com,\n  ann@example.com ,Ann\n"
                           "bob@example.com,Bob\n")
    report = import_csv(store, path, "main", T0)
    assert (report.rows, report.created, report.merged) == (2, 2, 1)
    ann = get_subscriber(store, "ann@example.com")
    assert ann is not None and ann.name == "Ann"


def test_import_records_consent_once_per_membership(store: Store, tmp_path: Path) -> None:
    """New people, known people new to the list, and members who already
    have a record: each membership the import makes gets one record naming
    the file, and nobody gets a second."""
    add_subscriber(store, "old@example.com", "main", T0)  # a member with a "cli" record
    add_subscriber(store, "other@example.com", "elsewhere", T0)  # known, not on "main"
    later = T0 + timedelta(days=1)
    path = write(tmp_path, "email,name\nnew@example.com,New\nOTHER@example.com,\n"
                           "old@example.com,\n")
    report = import_csv(store, path, "main", later)
    assert (report.rows, report.created) == (3, 1)
    import_csv(store, path, "main", later + timedelta(hours=1))  # nothing new: no records

    def records(email: str) -> list[tuple[str, str, str | None]]:
        person = get_subscriber(store, email)
        assert person is not None
        with store.read() as conn:
            return [(c.list_name, c.method, c.source) for c in consents_of(conn, person.id)]

    assert records("new@example.com") == [("main", "import", str(path))]
    assert records("other@example.com") == [("elsewhere", "cli", None),
                                            ("main", "import", str(path))]
    assert records("old@example.com") == [("main", "cli", None)]


def test_import_after_the_newest_subscriber_was_deleted(store: Store, tmp_path: Path) -> None:
    """New people's memberships and consents come from the ids the import
    created: a deleted newest id (which SQLite may hand out again) and the
    people already there get neither twice nor wrongly."""
    from dispatch.store.schema import consents, list_members
    from dispatch.subscribers.repository import delete_subscribers

    add_subscriber(store, "kept@example.com", "other", T0)
    add_subscriber(store, "gone@example.com", "other", T0)
    with store.write() as conn:
        delete_subscribers(conn, subscribers.c.email_key == "gone@example.com")
    path = write(tmp_path, "email\nnew1@example.com\nkept@example.com\nnew2@example.com\n")
    report = import_csv(store, path, "main", T0 + timedelta(days=1))
    assert (report.rows, report.created) == (3, 2)
    with store.read() as conn:
        people = dict(conn.execute(select(subscribers.c.id, subscribers.c.email_key)).all())
        members = sorted(people[sid] for sid in conn.execute(
            select(list_members.c.subscriber_id).where(list_members.c.list_name == "main")
        ).scalars())
        recorded = sorted((people[sid], method) for sid, method in conn.execute(
            select(consents.c.subscriber_id, consents.c.method)
            .where(consents.c.list_name == "main")))
    assert members == ["kept@example.com", "new1@example.com", "new2@example.com"]
    assert recorded == [("kept@example.com", "import"), ("new1@example.com", "import"),
                        ("new2@example.com", "import")]


def test_headerless_file_is_email_name_fields(store: Store, tmp_path: Path) -> None:
    report = import_csv(store, write(tmp_path, "ann@example.com,Ann,VIP\n"), "main", T0)
    assert report.created == 1
    ann = get_subscriber(store, "ann@example.com")
    assert ann is not None and ann.name == "Ann" and ann.fields == {"field1": "VIP"}


@pytest.mark.parametrize("status", ["unsubscribed", "bounced", "complained"])
def test_import_never_reactivates(store: Store, tmp_path: Path, status: str) -> None:
    person, _ = add_subscriber(store, "ann@example.com", "main", T0)
    change_status(store, [person.id], status, T0)  # type: ignore[arg-type]
    report = import_csv(store, write(tmp_path, "email,name\nann@example.com,Ann\n"), "other", T0)
    assert report.kept_suppressed == 1
    again = get_subscriber(store, "ann@example.com")
    assert again is not None and again.status == status
    # add() does not re-activate either
    add_subscriber(store, "ann@example.com", "third", T0)
    assert get_subscriber(store, "ann@example.com").status == status  # type: ignore[union-attr]


def test_status_column_carries_suppressions(store: Store, tmp_path: Path) -> None:
    add_subscriber(store, "bob@example.com", "main", T0)
    path = write(tmp_path, "email,name,status\nann@example.com,Ann,unsubscribed\n"
                           "bob@example.com,Bob,bounced\ncat@example.com,Cat,\n")
    import_csv(store, path, "main", T0)
    states = {s.email: s.status for s in find_subscribers(store)}
    assert states == {"ann@example.com": "unsubscribed", "bob@example.com": "bounced",
                      "cat@example.com": "active"}
    with pytest.raises(InputError) as info:
        import_csv(store, write(tmp_path, "email,status\nx@example.com,gone\n"), "main", T0)
    assert info.value.problems[0].field == "status"


def test_export_round_trips(store: Store, tmp_path: Path) -> None:
    import_csv(store, write(tmp_path, "email,name,city\nann@example.com,Ann,Leeds\n"
                                      "bob@example.com,\"Bob, Jr\",\n"), "main", T0)
    text = export_csv(find_subscribers(store, list_name="main"))
    assert text.splitlines()[0] == "email,name,status,city"
    other = open_store(f"sqlite:///{tmp_path / 'other.db'}")
    import_csv(other, write(tmp_path, text), "main", T0)
    assert export_csv(find_subscribers(other)) == text


def test_non_utf8_file_is_a_clear_error(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("email,name\nann@example.com,Zo\xeb\n".encode("latin-1"))
    with pytest.raises(InputError) as info:
        import_csv(store, path, "main", T0)
    assert "not UTF-8" in str(info.value)


def test_cli_import_add_remove_list_export(db_site: Path) -> None:
    site_root = db_site
    runner = CliRunner()
    root = ["--root", str(site_root)]
    csv = site_root / "people.csv"
    csv.write_text(BAD, encoding="utf-8")
    bad = runner.invoke(main, ["subscribers", "import", str(csv), "--list", "main", *root])
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    assert f"{csv}:3: email:" in bad.output and f"{csv}:7: email:" in bad.output
    assert all(line.count("(expected") <= 1 for line in bad.output.splitlines())
    ok = runner.invoke(main, ["subscribers", "import", str(csv), "--list", "main",
                              "--skip-invalid", *root])
    assert ok.exit_code == 0, ok.output
    assert "3 new" in ok.output and "3 invalid row(s) skipped" in ok.output
    added = runner.invoke(main, ["subscribers", "add", "Zed@Example.com", "--list", "vip",
                                 "--name", "Zed", *root])
    assert added.exit_code == 0 and "Zed@Example.com: added" in added.output
    removed = runner.invoke(main, ["subscribers", "remove", "ann@example.com", *root])
    assert removed.exit_code == 0 and "unsubscribed" in removed.output
    summary = runner.invoke(main, ["subscribers", "list", *root])
    assert "main" in summary.output and "vip" in summary.output
    out = site_root / "out.csv"
    runner.invoke(main, ["subscribers", "export", "--list", "main", "-o", str(out), *root])
    rows = list(csv_module.reader(out.read_text().splitlines(keepends=True)))
    assert ["ann@example.com", "Ann", "unsubscribed", "Leeds"] in rows and len(rows) == 4
    missing = runner.invoke(main, ["subscribers", "remove", "nobody@example.com", *root])
    assert missing.exit_code == 1 and "no subscriber" in missing.output
    # A line break in a name would become header injection in To:, as in the CSV.
    for name in ("Mal\nBcc: victim@example.com", "Mal\r", "Mal\u2028lory"):
        broken = runner.invoke(main, ["subscribers", "add", "mal@example.com", "--list", "vip",
                                      "--name", name, *root])
        assert broken.exit_code == 1 and "spans several lines" in broken.output
        assert "Traceback" not in broken.output
    store = open_store(load_settings(site_root).database_url)
    assert get_subscriber(store, "mal@example.com") is None
    store.dispose()
    typo = runner.invoke(main, ["subscribers", "add", "eve@example", "--list", "vip", *root])
    assert typo.exit_code == 1 and typo.output.count("(expected") == 1


def test_cli_reactivate_only_bounced_without_consent(db_site: Path) -> None:
    root = ["--root", str(db_site)]
    store = open_store(load_settings(db_site).database_url)
    people = {}
    for who, status in [("bea", "bounced"), ("ben", "bounced"), ("uma", "unsubscribed"),
                        ("cam", "complained"), ("ada", "active"), ("out", "bounced")]:
        person, _ = add_subscriber(store, f"{who}@example.com",
                                   "other" if who == "out" else "main", T0)
        people[who] = person
        if status != "active":
            change_status(store, [person.id], status, T0, "test")  # type: ignore[arg-type]
    runner = CliRunner()

    def status(who: str) -> str:
        found = get_subscriber(store, f"{who}@example.com")
        assert found is not None
        return found.status

    out = runner.invoke(main, ["subscribers", "reactivate", "bea@example.com",
                               "uma@EXAMPLE.com", "ada@example.com", *root])
    assert out.exit_code == 1, out.output
    assert "1 subscriber(s) active again (were 1 bounced)" in out.output
    assert "uma@example.com: unsubscribed, not re-activated" in out.output
    assert "ada@example.com: already active" in out.output
    assert (status("bea"), status("uma")) == ("active", "unsubscribed")
    # Every bounced member of one list; the unsubscribed and complained stay.
    out = runner.invoke(main, ["subscribers", "reactivate", "--list", "main", *root])
    assert out.exit_code == 0 and "1 subscriber(s) active again" in out.output, out.output
    assert (status("ben"), status("out"), status("cam")) == ("active", "bounced", "complained")
    out = runner.invoke(main, ["subscribers", "reactivate", "out@example.com", "--list", "main",
                               *root])
    assert out.exit_code == 1 and "not on list main" in out.output
    # An unsubscribed person who asked to come back can; a spam complaint never.
    out = runner.invoke(main, ["subscribers", "reactivate", "uma@example.com", "cam@example.com",
                               "--include-unsubscribed", *root])
    assert out.exit_code == 1 and "1 subscriber(s) active again" in out.output
    assert "cam@example.com: complained" in out.output and "never" in out.output
    assert (status("uma"), status("cam")) == ("active", "complained")
    person = get_subscriber(store, "uma@example.com")
    assert person is not None and person.status_reason == "re-activated by operator"
    out = runner.invoke(main, ["subscribers", "reactivate", *root])
    assert out.exit_code == 1 and "--list" in out.output
    store.dispose()


def test_lists_synced_from_csv_each_pass(db_site: Path) -> None:
    from dispatch.pipeline import default_stages, run_pass

    site_root = db_site
    (site_root / "good.csv").write_text("email,name\nann@example.com,Ann\n")
    (site_root / "bad.csv").write_text("email,name\nnope,Bob\n")
    toml = site_root / "dispatch.toml"
    toml.write_text(toml.read_text() + '\n[subscribers.lists]\nweekly = "good.csv"\n'
                    'broken = "bad.csv"\nmissing = "nope.csv"\n')
    settings = load_settings(site_root)
    store = open_store(settings.database_url)
    stages = [s for s in default_stages() if s[0] == "subscribers"]
    report = run_pass(settings, store, T0, stages=stages).stages[0]
    assert "weekly: 1 from good.csv (1 new)" in report.summary
    where = {(p.path, p.line, p.field) for p in report.problems}
    assert (str(site_root / "bad.csv"), 2, "email") in where  # all-or-nothing per file
    assert any(p.field == "subscribers.lists.missing" and p.line for p in report.problems)
    assert list_names(store) == ["weekly"]
    person = get_subscriber(store, "ann@example.com")
    assert person is not None
    change_status(store, [person.id], "unsubscribed", T0)
    run_pass(settings, store, T0, stages=stages)  # the next pass never re-activates
    assert get_subscriber(store, "ann@example.com").status == "unsubscribed"  # type: ignore[union-attr]
    store.dispose()


@pytest.mark.parametrize("name", ["", "a b", "a\nb", "news<>@x", "-x", "x" * 65])
def test_a_list_name_that_cannot_travel_in_an_edition_id_is_refused(
        store: Store, tmp_path: Path, name: str) -> None:
    """A space, '<' or '@' went into the edition id, so every message of the
    edition failed to build (its web-view URL); an empty name made a list
    nobody could name again."""
    with pytest.raises(InputError, match="is not a list name"):
        add_subscriber(store, "ann@example.com", name, T0)
    with pytest.raises(InputError, match="is not a list name"):
        import_csv(store, write(tmp_path, "email\nbob@example.com\n"), name, T0)
    assert list_names(store) == [] and count(store) == 0
    add_subscriber(store, "ann@example.com", "heart-health.v2_b", T0)
    assert list_names(store) == ["heart-health.v2_b"]


@pytest.mark.parametrize("text", ["", " \n\n\t\n", "\ufeff\n"])
def test_an_empty_file_imports_nothing_with_a_warning_naming_it(
        store: Store, tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    report = import_csv(store, path, "main", T0)
    assert report.rows == 0
    assert [(p.path, p.is_error) for p in report.problems] == [(str(path), False)]
    assert "empty" in report.problems[0].message
    # A file with addresses gets no such warning.
    assert import_csv(store, write(tmp_path, "email\na@example.com\n"), "main", T0).problems == ()
