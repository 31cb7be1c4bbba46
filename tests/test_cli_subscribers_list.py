"""`dispatch subscribers list`: one header per column, and every column says
something (when the status last changed, and why)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from dispatch.cli import main


@pytest.mark.parametrize("columns", ["200", "80"])
def test_list_has_since_and_reason_columns(example_site: Path, columns: str) -> None:
    runner = CliRunner()
    root = ["--root", str(example_site)]
    env = {"COLUMNS": columns}
    imported = runner.invoke(main, ["subscribers", "import", "subscribers.csv", "--list",
                                    "weekly", *root], env=env)
    assert imported.exit_code == 0, imported.output
    removed = runner.invoke(main, ["subscribers", "remove", "ada.lovelace@example.com", *root])
    assert removed.exit_code == 0, removed.output
    listed = runner.invoke(main, ["subscribers", "list", "--list", "weekly", *root], env=env)
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    header = next(line for line in lines if "email" in line)
    assert [cell.strip() for cell in header.strip("┃ ").split("┃")] == [
        "email", "name", "status", "since", "reason"]
    rows = {cells[0]: cells for line in lines if line.startswith("│")
            and (cells := [c.strip() for c in line.strip("│ ").split("│")])[0]}
    # The address is never cut short: it is what `subscribers remove` needs.
    ada = rows["ada.lovelace@example.com"]
    assert ada[2].startswith("unsubscribed") and ada[3].startswith("20")
    assert ada[4].startswith("remov")  # at 80 columns the reason may be cut: "remov…"
    active = rows["alan.turing@example.com"]
    assert active[2] == "active" and active[3].startswith("20") and active[4] == "—"
