"""The core commands as a user runs them: check, articles, run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dispatch.cli import main

ENV = {**os.environ, "COLUMNS": "200"}


def dispatch(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dispatch", *args], capture_output=True,
                          text=True, cwd=cwd, env=ENV, timeout=120)


def test_check_passes_on_the_example_site(example_site: Path) -> None:
    result = dispatch("check", "--root", str(example_site))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 error(s), 0 warning(s)" in result.stdout


def test_check_reports_a_broken_article_and_still_loads_the_rest(example_site: Path) -> None:
    broken = example_site / "content" / "walking-after-meals.md"
    lines = broken.read_text(encoding="utf-8").splitlines()
    date_line = next(i for i, line in enumerate(lines) if line.startswith("date:"))
    lines[date_line] = "date: someday soon"
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = dispatch("check", "--root", str(example_site))
    assert result.returncode == 1
    assert (f"content/walking-after-meals.md:{date_line + 1}: date: 'someday soon' is not a date"
            in result.stderr)
    assert "Traceback" not in result.stderr

    listing = dispatch("articles", "--root", str(example_site))
    assert "sleep-and-blood-pressure" in listing.stdout
    assert "walking-after-meals" not in listing.stdout


@pytest.mark.parametrize("columns", ["200", "80", "60"])
def test_articles_table_shows_status(example_site: Path, columns: str) -> None:
    # Slugs stay whole even on a narrow terminal: they are typed into other commands.
    result = CliRunner().invoke(main, ["articles", "--root", str(example_site)],
                                env={"COLUMNS": columns})
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines()
            if line.count("│") > 3}
    assert "draft" in rows["antibiotics-and-sore-throats"]
    assert "scheduled" in rows["flu-vaccine-timing"]
    assert "published" in rows["sleep-and-blood-pressure"]


def test_run_once_records_new_articles_once(site_root: Path) -> None:
    from tests.sitekit import write_article

    write_article(site_root, "a.md", "title: A\ndate: 2026-01-01", "Body.\n")
    first = dispatch("run", "--once", "--root", str(site_root))
    assert first.returncode == 0, first.stderr
    # A fresh install's back catalogue is recorded, not announced as news.
    assert ("loaded 1, published 1, 1 already published (recorded, not announced)"
            in first.stdout), first.stdout
    assert "new 1" not in first.stdout
    second = dispatch("run", "--once", "--root", str(site_root))
    assert "new 0" in second.stdout
    write_article(site_root, "b.md", "title: B\ndate: 2026-01-02", "Body.\n")
    third = dispatch("run", "--once", "--root", str(site_root))
    assert "loaded 2, published 2, new 1 (b)" in third.stdout
    assert (site_root / ".dispatch" / "dispatch.db").exists()


def test_user_mistakes_never_print_a_traceback(site_root: Path, tmp_path: Path) -> None:
    (site_root / "dispatch.toml").write_text("[site\nurl = 1\n")
    bad_toml = dispatch("check", "--root", str(site_root))
    assert bad_toml.returncode == 1 and "dispatch.toml:1" in bad_toml.stderr
    (site_root / "dispatch.toml").write_text('[site]\ntimezone = "Mars/Olympus"\n')
    bad_zone = dispatch("check", "--root", str(site_root))
    assert "dispatch.toml:2: site.timezone: 'Mars/Olympus' is not allowed" in bad_zone.stderr
    missing = dispatch("check", "--root", str(tmp_path / "nowhere"))
    assert missing.returncode != 0
    for result in (bad_toml, bad_zone, missing):
        assert "Traceback" not in result.stderr


def test_bad_database_url_is_a_clean_error(site_root: Path) -> None:
    env = {**ENV, "DISPATCH_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    result = subprocess.run([sys.executable, "-m", "dispatch", "run", "--once", "--root",
                             str(site_root)], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1
    assert "cannot open the database" in result.stderr and "Traceback" not in result.stderr


def test_run_stops_cleanly_on_sigterm(site_root: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "dispatch", "run", "--interval", "3600",
                             "--root", str(site_root)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout is not None
    # Wait for the first pass to finish: the process is then idle in its loop.
    for line in proc.stdout:
        if line.startswith("loaded "):
            break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped" in out and "Traceback" not in err
