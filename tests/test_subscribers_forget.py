"""Consent records from imports and the CLI, `subscribers show`, `subscribers
data` (everything stored about an address, as JSON) and `subscribers forget`
(erasure leaving only a keyed hash that makes imports refuse the address
until a new confirmed signup), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from dispatch.cli import main
from dispatch.config import load_settings
from dispatch.outbox import queue_edition
from dispatch.pipeline import default_stages, run_pass
from dispatch.signup.consent import consents_of
from dispatch.signup.forget import erasure_hash, identity_of
from dispatch.store import open_store
from dispatch.store.schema import consents, list_members, outbox, subscribers, suppressions
from dispatch.subscribers import get_subscriber

SECRET = "forget-test-secret"


@dataclass(frozen=True)
class StoredEdition:
    """What the outbox stores of an edition (its body holds no personal data)."""

    edition_id: str = "d.weekly"
    kind: str = "digest"
    subject: str = "This week"

    def to_json(self) -> str:
        return "{}"


T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ANN = "ann@example.com"


@pytest.fixture
def db_site(site_root: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DISPATCH_DATABASE_URL", database_url)
    monkeypatch.setenv("DISPATCH_SECRET_KEY", SECRET)
    (site_root / "people.csv").write_text("email,name,city\nAnn@Example.com,Ann,Leeds\n"
                                          "bob@example.com,Bob,York\n", encoding="utf-8")
    return site_root


def cli(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args, "--root", str(root)])
    return result.exit_code, result.output


def test_imports_and_cli_adds_record_consent_and_show_prints_it(db_site: Path) -> None:
    code, out = cli(db_site, "subscribers", "import", str(db_site / "people.csv"),
                    "--list", "weekly")
    assert code == 0, out
    code, out = cli(db_site, "subscribers", "add", "Ann@Example.com", "--list", "vip")
    assert code == 0, out
    # Importing the same file again records nothing new.
    cli(db_site, "subscribers", "import", str(db_site / "people.csv"), "--list", "weekly")
    settings = load_settings(db_site)
    store = open_store(settings.database_url)
    person = get_subscriber(store, "Ann@example.com")
    assert person is not None
    with store.read() as conn:
        found = consents_of(conn, person.id)
    assert [(c.list_name, c.method) for c in found] == [("weekly", "import"), ("vip", "cli")]
    assert found[0].source == str(db_site / "people.csv")
    code, out = cli(db_site, "subscribers", "show", "Ann@Example.com")
    assert code == 0, out
    assert "status: active" in out
    assert f"weekly: import {found[0].given_at.isoformat(timespec='seconds')}" in out
    assert f"from {db_site / 'people.csv'}" in out and "vip: cli" in out
    store.dispose()


def test_data_prints_everything_stored_as_json(db_site: Path) -> None:
    cli(db_site, "subscribers", "import", str(db_site / "people.csv"), "--list", "weekly")
    code, out = cli(db_site, "subscribers", "data", "Ann@example.com")
    assert code == 0, out
    data = json.loads(out)
    person = data["subscriber"]
    assert person["email"] == "Ann@Example.com" and person["name"] == "Ann"
    assert person["fields"] == {"city": "Leeds"} and person["status"] == "active"
    assert [entry["list"] for entry in person["lists"]] == ["weekly"]
    assert person["consents"][0]["method"] == "import"
    assert data["erased"] is None
    code, out = cli(db_site, "subscribers", "data", "nobody@example.com")
    assert code == 1 and "no subscriber nobody@example.com: nothing is stored" in out


def test_forget_leaves_only_the_hash_and_imports_refuse_the_address(db_site: Path) -> None:
    cli(db_site, "subscribers", "import", str(db_site / "people.csv"), "--list", "weekly")
    settings = load_settings(db_site)
    store = open_store(settings.database_url)
    queue_edition(store, StoredEdition(), ["weekly"], T0)
    code, out = cli(db_site, "subscribers", "forget", "ANN@example.com", "--yes")
    assert code == 0 and "erased" in out, out
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(subscribers)
                            .where(func.lower(subscribers.c.email) == ANN)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(outbox)).scalar() == 1  # Bob's
        assert conn.execute(select(func.count()).select_from(list_members)).scalar() == 1
        assert conn.execute(select(func.count()).select_from(consents)).scalar() == 1
        hashes = list(conn.execute(select(suppressions.c.address_hash)).scalars())
    assert hashes == [erasure_hash(SECRET.encode(), identity_of(ANN))]
    assert all(c in "0123456789abcdef" for c in hashes[0])
    # The data export now says only that it was erased.
    code, out = cli(db_site, "subscribers", "data", ANN)
    assert code == 0 and json.loads(out)["subscriber"] is None
    assert json.loads(out)["erased"]["reason"] == "erased on request"
    # A re-import is refused for that address, with its line, the rest goes on.
    code, out = cli(db_site, "subscribers", "import", str(db_site / "people.csv"),
                    "--list", "weekly")
    assert code == 0
    assert f"{db_site / 'people.csv'}:2: email: warning: Ann@Example.com: not imported" in out
    assert "erased at its owner's request" in out
    assert get_subscriber(store, "Ann@example.com") is None
    # …and so does the sync of [subscribers.lists] on every pass.
    toml = db_site / "dispatch.toml"
    toml.write_text(toml.read_text() + '\n[subscribers.lists]\nweekly = "people.csv"\n')
    settings = load_settings(db_site)
    stages = [s for s in default_stages() if s[0] == "subscribers"]
    report = run_pass(settings, store, T0, stages=stages).stages[0]
    assert any("erased at its owner's request" in p.message and p.line == 2
               for p in report.problems)
    assert get_subscriber(store, "Ann@example.com") is None
    store.dispose()


def test_forget_also_erases_merged_spellings_and_data_lists_them(db_site: Path) -> None:
    from dispatch.store.schema import subscriber_merges

    cli(db_site, "subscribers", "import", str(db_site / "people.csv"), "--list", "weekly")
    settings = load_settings(db_site)
    store = open_store(settings.database_url)
    person = get_subscriber(store, ANN)
    assert person is not None
    with store.write() as conn:
        conn.execute(subscriber_merges.insert().values(
            merged_at=T0, email_key=ANN, kept_id=person.id, kept_email=person.email,
            merged_id=person.id + 100, merged_email="ANN@example.com", merged_status="active",
            status=person.status))
    code, out = cli(db_site, "subscribers", "data", ANN)
    assert code == 0 and json.loads(out)["merged_spellings"][0]["merged"] == "ANN@example.com"
    cli(db_site, "subscribers", "forget", ANN, "--yes")
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(subscriber_merges)).scalar() == 0
    store.dispose()


def test_forget_takes_the_address_out_of_the_staff_audit_log(db_site: Path) -> None:
    from dispatch.staff import audit_entries, record_action

    cli(db_site, "subscribers", "import", str(db_site / "people.csv"), "--list", "weekly")
    store = open_store(load_settings(db_site).database_url)
    with store.write() as conn:
        record_action(conn, T0, "editor@journal.test", "view subscriber", "Ann@Example.com")
        record_action(conn, T0, "editor@journal.test", "test send", "digest",
                      "me@journal.test, ann@example.com")
        record_action(conn, T0, "editor@journal.test", "view subscriber", "bob@example.com")
    code, out = cli(db_site, "subscribers", "forget", ANN, "--yes")
    assert code == 0, out
    entries = audit_entries(store)
    store.dispose()
    assert len(entries) >= 3  # the entries stay: who did what, and when
    text = " ".join(f"{e.target} {e.detail}" for e in entries).lower()
    assert ANN not in text and "bob@example.com" in text
