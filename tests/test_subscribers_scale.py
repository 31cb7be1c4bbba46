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
