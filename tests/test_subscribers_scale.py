"""Big lists: the sync stage reads a CSV only when it changed; `list` pages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.delivery_kit import T0

from dispatch.cli import main
from dispatch.config import load_settings
from dispatch.store import open_store
from dispatch.subscribers import get_subscriber


@pytest.fixture
def db_site(site_root: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DISPATCH_DATABASE_URL", database_url)
    return site_root


def test_unchanged_csv_is_not_read_again(db_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dispatch.pipeline import default_stages, run_pass
    from dispatch.subscribers import csvfile

    csv_path = db_site / "people.csv"
    csv_path.write_text("email,name\nann@example.com,Ann\n", encoding="utf-8")
    toml = db_site / "dispatch.toml"
    toml.write_text(toml.read_text() + '\n[subscribers.lists]\nweekly = "people.csv"\n')
    settings = load_settings(db_site)
    store = open_store(settings.database_url)
    stages = [s for s in default_stages() if s[0] == "subscribers"]
    reads: list[str] = []
    real = csvfile.import_stream

    def counting(*args: object, **kwargs: object) -> csvfile.ImportReport:
        reads.append("read")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(csvfile, "import_stream", counting)

    def summary() -> str:
        return run_pass(settings, store, T0, stages=stages).stages[0].summary

    assert "weekly: 1 from people.csv (1 new)" in summary() and len(reads) == 1
    assert "unchanged" in summary() and len(reads) == 1  # same size and mtime: not opened
    stat = csv_path.stat()
    os.utime(csv_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert "unchanged (touched)" in summary() and len(reads) == 1  # same hash
    csv_path.write_text("email,name\nann@example.com,Ann\nbob@example.com,Bob\n")
    assert "weekly: 2 from people.csv (1 new)" in summary() and len(reads) == 2
    # Same size, new content and a new mtime: the hash tells it changed.
    csv_path.write_text("email,name\nann@example.com,Ann\nbob@example.com,Rob\n")
    os.utime(csv_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5 * 10**9))
    assert "(0 new)" in summary() and len(reads) == 3
    assert get_subscriber(store, "bob@example.com").name == "Rob"  # type: ignore[union-attr]
    store.dispose()


def test_list_pages_and_says_how_to_see_more(db_site: Path, tmp_path: Path) -> None:
    root = ["--root", str(db_site)]
    people = tmp_path / "many.csv"
    people.write_text("email\n" + "".join(f"p{i:03d}@example.com\n" for i in range(120)))
    runner = CliRunner()
    assert runner.invoke(main, ["subscribers", "import", str(people), "--list", "big",
                                *root]).exit_code == 0
    first = runner.invoke(main, ["subscribers", "list", "--list", "big", "--limit", "50",
                                 *root], terminal_width=200)
    assert first.exit_code == 0, first.output
    assert "120 subscriber(s); 50 shown" in first.output
    assert "p049@example.com" in first.output and "p050@example.com" not in first.output
    assert "--after p049@example.com" in first.output
    second = runner.invoke(main, ["subscribers", "list", "--list", "big", "--limit", "50",
                                  "--after", "p049@example.com", *root], terminal_width=200)
    assert "p050@example.com" in second.output and "p049@example.com" not in second.output.split(
        "next page")[0]
    last = runner.invoke(main, ["subscribers", "list", "--list", "big", "--after",
                                "p099@example.com", *root], terminal_width=200)
    assert "p119@example.com" in last.output and "next page" not in last.output


_FILES = {
    "good": "email,name,city,status\nann@EXAMPLE.com,,Leeds,\nann@example.com,Ann,York,\n"
            "kim@bücher.example,Kim,,unsubscribed\n'=cmd@example.com,'=Eve,,\n",
    "bad rows": 'email,name\nann@example.com,Ann\nnot-an-address,Bob\n"fay@example.com","Fay\n'
                'Jones"\nann@example.com,Ann,extra\n',
    "headerless": "ann@example.com;Ann;Leeds\nbob@example.com;Bob;York\n",
    "bad header": "who|what\nann@example.com|Ann\n",
    "erased": "email\nann@example.com\nforgotten@example.com\n",
}


def _import_outcome(store_url: str, path: Path, two: bool, skip: bool,
                    monkeypatch: pytest.MonkeyPatch) -> object:
    from dispatch.errors import InputError
    from dispatch.subscribers import csvfile

    monkeypatch.setattr(csvfile, "PARALLEL_BYTES", 0 if two else 1 << 40)
    store = open_store(store_url)
    try:
        report = csvfile.import_csv(store, path, "big", T0, skip_invalid=skip,
                                    erased=lambda key: key.startswith("forgotten@"))
    except InputError as exc:
        outcome: object = [str(p) for p in exc.problems]
    else:
        outcome = report
    with store.read() as conn:
        rows = conn.exec_driver_sql("SELECT email, email_key, name, status, fields "
                                    "FROM subscribers ORDER BY email_key").all()
    store.dispose()
    return outcome, [tuple(r) for r in rows]


@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize("name", sorted(_FILES))
def test_a_file_read_in_a_second_process_imports_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, skip: bool) -> None:
    """A big file is read and validated by a child process: the report,
    the problems and what is stored are those of reading it in one."""
    path = tmp_path / "people.csv"
    path.write_text(_FILES[name], encoding="utf-8")
    one = _import_outcome(f"sqlite:///{tmp_path / 'one.db'}", path, False, skip, monkeypatch)
    two = _import_outcome(f"sqlite:///{tmp_path / 'two.db'}", path, True, skip, monkeypatch)
    assert two == one


def test_a_second_process_reports_a_file_that_is_not_utf8(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("email,name\nann@example.com,Zo\xeb\n".encode("latin-1"))
    one = _import_outcome(f"sqlite:///{tmp_path / 'one.db'}", path, False, False, monkeypatch)
    two = _import_outcome(f"sqlite:///{tmp_path / 'two.db'}", path, True, False, monkeypatch)
    assert two == one and "not UTF-8" in str(one)
