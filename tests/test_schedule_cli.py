"""The scheduler as staff and operators meet it: commands, hot reload, real actions."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from tests.schedulekit import utc
from tests.sitekit import write_article

from dispatch.config import load_settings
from dispatch.schedule import firings
from dispatch.schedule.leader import leadership_for
from dispatch.schedule.runner import SchedulerService
from dispatch.store.engine import open_store
from dispatch.store.schema import editions, outbox, schedule_runs
from dispatch.subscribers import add_subscriber

SCHEDULES = """\
timezone: Europe/London
schedules:
  - id: weekly
    kind: digest
    cron: "0 8 * * mon"
    audience: [weekly]
    subject: "{{ articles | length }} new this week"
  - id: alerts
    kind: article
    on_publish: true
    audience: [weekly]
  - id: nightly-feeds
    kind: feeds
    cron: "0 2 * * *"
"""

ARTICLE = """\
title: Walking after meals
date: {date}
summary: A short walk after eating helps blood sugar.
category: Metabolic health
"""
BODY = "Walk for ten minutes.\n\n## Key takeaway\n\nWalk for ten minutes after meals.\n"


def dispatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dispatch", *args], capture_output=True,
                          text=True, timeout=120)


def make_site(root: Path) -> Path:
    (root / "content").mkdir(parents=True)
    (root / "dispatch.toml").write_text(
        '[site]\ntitle = "Test Journal"\nurl = "https://journal.test"\n'
        'timezone = "Europe/London"\n\n[sender]\nname = "Test Journal"\n'
        'email = "news@journal.test"\npostal_address = "1 Test Street, Testville"\n')
    (root / "schedules.yaml").write_text(SCHEDULES)
    return root


def test_schedules_lists_next_three_firings_in_both_zones(tmp_path: Path) -> None:
    root = make_site(tmp_path / "site")
    result = dispatch("schedules", "--root", str(root))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "weekly  [digest]  cron 0 8 * * mon  (Europe/London)" in out
    block = out.split("weekly  [digest]")[1].split("alerts")[0]
    nexts = [line for line in block.splitlines() if "UTC)" in line]
    assert len(nexts) == 3
    assert all("Mon 20" in line and ("08:00 GMT (08:00 UTC)" in line or
                                     "08:00 BST (07:00 UTC)" in line) for line in nexts)
    assert "when an article is published" in out
    assert out.count("last: never") == 3


def test_plan_previews_without_recording_or_queueing(tmp_path: Path) -> None:
    root = make_site(tmp_path / "site")
    future = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    write_article(root, "walk.md", ARTICLE.format(date=future), BODY)
    until = (datetime.now(UTC) + timedelta(days=9)).strftime("%Y-%m-%d")
    result = dispatch("plan", "--until", until, "--root", str(root))
    assert result.returncode == 0, result.stderr
    # The future-dated article will be emailed when its date passes, and the
    # next Monday digest will carry it.
    assert "alerts [article]" in result.stdout
    assert "weekly [digest]" in result.stdout
    assert "    - Walking after meals (walk)" in result.stdout
    # The subject each email will have, rendered as it will be sent.
    assert '    subject: "Walking after meals"' in result.stdout
    assert '    subject: "1 new this week"' in result.stdout
    assert result.stdout.count("nightly-feeds [feeds]") >= 8
    store = open_store(load_settings(root).database_url)
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(schedule_runs)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 0
    store.dispose()
    bad = dispatch("plan", "--until", "next week", "--root", str(root))
    assert bad.returncode == 1 and "--until" in bad.stderr and "Traceback" not in bad.stderr


def test_trigger_fires_once_and_dry_run_records_nothing(tmp_path: Path) -> None:
    root = make_site(tmp_path / "site")
    dry = dispatch("trigger", "nightly-feeds", "--dry-run", "--root", str(root))
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing recorded or queued" in dry.stdout
    store = open_store(load_settings(root).database_url)
    assert firings.runs(store) == []
    fired = dispatch("trigger", "nightly-feeds", "--root", str(root))
    assert fired.returncode == 0, fired.stderr
    assert fired.stdout.startswith("nightly-feeds: sent")
    (run,) = firings.runs(store)
    assert run.origin == "manual" and run.status == "sent"
    store.dispose()
    unknown = dispatch("trigger", "nope", "--root", str(root))
    assert unknown.returncode == 1
    assert "no valid schedule 'nope'" in unknown.stderr and "Traceback" not in unknown.stderr


def test_trigger_dry_run_shows_the_subject(tmp_path: Path) -> None:
    root = make_site(tmp_path / "site")
    write_article(root, "walk.md", ARTICLE.format(date="2026-01-05T09:00:00+00:00"), BODY)
    assert dispatch("run", "--once", "--root", str(root)).returncode == 0  # sees it published
    dry = dispatch("trigger", "alerts", "--dry-run", "--root", str(root))
    assert dry.returncode == 0, dry.stderr
    assert '    subject: "Walking after meals"' in dry.stdout
    assert "    - Walking after meals (walk)" in dry.stdout


def test_invalid_hot_reload_keeps_the_schedules_in_force(tmp_path: Path) -> None:
    root = make_site(tmp_path / "site")
    settings = load_settings(root)
    store = open_store(settings.database_url)
    add_subscriber(store, "ana@example.com", "weekly", utc(2026, 3, 1))
    service = SchedulerService(settings, store, lambda: utc(2026, 3, 2, 7))
    assert [s.id for s in service.schedules.schedules] == ["weekly", "alerts", "nightly-feeds"]
    assert service.reload() == (False, [])  # unchanged file: nothing to do

    (root / "schedules.yaml").write_text(SCHEDULES.replace('"0 8 * * mon"', '"0 8 * * MONDAY"'))
    changed, problems = service.reload()
    assert not changed
    assert [str(p) for p in problems] == [
        'schedules.yaml:5: schedules[0].cron: "0 8 * * MONDAY" is not a cron expression: '
        'weekday field: "MONDAY" is neither a number 0-7 nor a name (sun mon tue wed thu fri '
        'sat) (expected five fields: minute hour day-of-month month weekday, e.g. "0 8 * * '
        'mon", or @hourly, @daily, @weekly, @monthly, @yearly)']
    assert [s.id for s in service.schedules.schedules] == ["weekly", "alerts", "nightly-feeds"]
    assert service.reload() == (False, [])  # the same broken file is reported once

    (root / "schedules.yaml").write_text(SCHEDULES.replace("0 8 * * mon", "30 9 * * tue"))
    changed, problems = service.reload()
    assert changed and problems == []
    assert str(service.schedules.schedules[0].trigger) == "cron 30 9 * * tue"
    store.dispose()


def test_firings_queue_real_editions_once(tmp_path: Path) -> None:
    """The real actions: render with the email stage and queue in the outbox."""
    root = make_site(tmp_path / "site")
    settings = load_settings(root)
    store = open_store(settings.database_url)
    for name in ("ana", "ben"):
        add_subscriber(store, f"{name}@example.com", "weekly", utc(2026, 3, 1))
    clock = [utc(2026, 3, 2, 7)]
    service = SchedulerService(settings, store, lambda: clock[0])
    assert service.run_pass().ok  # the schedules begin here
    write_article(root, "walk.md", ARTICLE.format(date="2026-03-02T07:30:00+00:00"), BODY)
    clock[0] = utc(2026, 3, 2, 8)
    report = service.run_pass()
    stage = next(s for s in report.stages if s.stage == "schedule")
    assert not stage.failed, stage.summary
    # Firings run after lists are synced and right before delivery drains them.
    names = [s.stage for s in report.stages]
    assert names.index("subscribers") < names.index("schedule") == names.index("delivery") - 1
    with store.read() as conn:
        rows = dict(conn.execute(select(editions.c.edition_id, editions.c.subject)).all())
        queued = conn.execute(select(func.count()).select_from(outbox)).scalar_one()
    assert rows == {"alerts-walk": "Walking after meals",
                    "weekly-20260302T080000Z": "1 new this week"}
    assert queued == 4  # two editions x two subscribers
    # A second pass, a restart or a manual re-run of the same firing adds nothing.
    SchedulerService(settings, store, lambda: clock[0]).run_pass()
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 4
    runs = {(r.schedule_id, r.status) for r in firings.runs(store)}
    assert runs == {("weekly", "sent"), ("alerts", "sent")}
    sent = next(r for r in firings.runs(store, "weekly") if r.status == "sent")
    assert sent.articles == ("walk",) and json.dumps(sent.articles)
    store.dispose()


def test_run_once_fires_schedules_unless_another_scheduler_leads(tmp_path: Path) -> None:
    root = make_site(tmp_path / "site")
    first = dispatch("run", "--once", "--root", str(root))
    assert first.returncode == 0, first.stderr
    assert "  schedule: nothing due" in first.stdout
    settings = load_settings(root)
    store = open_store(settings.database_url)
    leader = leadership_for(store, settings.state_dir)
    assert leader.try_acquire()  # this test process now leads (a separate process to dispatch)
    try:
        second = dispatch("run", "--once", "--root", str(root))
    finally:
        leader.release()
        store.dispose()
    assert second.returncode == 0, second.stderr
    assert "another scheduler is active" in second.stdout
    assert "  schedule:" not in second.stdout


def test_check_keeps_three_digit_line_numbers_and_says_an_article(tmp_path: Path) -> None:
    # rich once turned "schedules.yaml:100:" into an emoji; and grammar.
    root = make_site(tmp_path / "site")
    padding = "".join(f"# note {n}\n" for n in range(97))
    (root / "schedules.yaml").write_text(
        padding + "schedules:\n  - id: alerts\n    kind: article\n    on_publish: true\n")
    result = dispatch("check", "--root", str(root))
    assert result.returncode == 1
    assert ("schedules.yaml:99: schedules[0].audience: an article schedule needs an audience"
            in result.stderr + result.stdout), result.stderr


def test_a_missing_schedules_file_is_reported_once_schedules_have_run(tmp_path: Path) -> None:
    root = make_site(tmp_path / "site")
    ran = dispatch("run", "--once", "--root", str(root))  # keeps the last good copy
    assert ran.returncode == 0, ran.stderr
    (root / "schedules.yaml").rename(root / "schedules.yml")
    result = dispatch("check", "--root", str(root))
    assert "schedules.yaml: warning: not found, so nothing is scheduled" in result.stderr
    assert "schedules.last-good.yaml" in result.stderr


NEW_YORK = """\
timezone: America/New_York
schedules:
  - id: daily
    kind: digest
    cron: "0 0 * * *"
    audience: [weekly]
    starts: 2027-03-10
  - id: gap
    kind: feeds
    cron: "30 2 * * *"
  - id: alerts
    kind: article
    on_publish: true
    audience: [weekly]
"""


def test_plan_json_and_filters_over_the_new_york_spring_change(tmp_path: Path) -> None:
    root = make_site(tmp_path / "site")
    (root / "schedules.yaml").write_text(NEW_YORK)
    write_article(root, "walk.md", ARTICLE.format(date="2027-03-12T09:00:00-05:00"), BODY)
    result = dispatch("plan", "--json", "--from", "2027-03-14", "--until", "2027-03-15",
                      "--root", str(root))
    assert result.returncode == 0, result.stderr
    planned = json.loads(result.stdout)
    # (--from/--until are in site time, Europe/London: Mar 14 00:00 GMT is Mar 13 19:00 EST.)
    assert [(p["schedule"], p["fire_time"], p["action"]) for p in planned] == [
        ("daily", "2027-03-14T00:00:00-05:00", "skip"),
        ("gap", "2027-03-14T03:00:00-04:00", "send"),      # 02:30 does not exist: at 03:00
        ("daily", "2027-03-15T00:00:00-04:00", "skip"),    # the firing APScheduler lost
        ("gap", "2027-03-15T02:30:00-04:00", "send"),
    ]
    first = planned[0]
    assert first["kind"] == "digest" and first["timezone"] == "America/New_York"
    assert first["reason"] == "0 new articles since Sat 2027-03-13 00:00; min_articles is 1"
    assert first["window"] == {"start": "2027-03-13T00:00:00-05:00",
                               "end": "2027-03-14T00:00:00-05:00", "articles": 0}
    assert planned[1]["sends"] == {"feeds": ["rss", "atom", "json"]}
    # The week before: starts: sets the first window, so the article goes out on the 13th.
    week = json.loads(dispatch("plan", "--json", "--from", "2027-03-12", "--until",
                               "2027-03-13", "--schedule", "daily", "--root",
                               str(root)).stdout)
    sent = [p for p in week if p["action"] == "send"]
    assert [p["fire_time"] for p in sent] == ["2027-03-13T00:00:00-05:00"]
    assert sent[0]["window"]["start"] == "2027-03-10T00:00:00-05:00"
    assert sent[0]["articles"] == [{"slug": "walk", "title": "Walking after meals"}]
    assert sent[0]["sends"]["email"]["audience"] == ["weekly"]
    assert sent[0]["sends"]["email"]["subject"] == "Test Journal: 1 new article"
    text = dispatch("plan", "--from", "2027-03-14", "--until", "2027-03-15", "--kind", "feeds",
                    "--root", str(root))
    assert text.returncode == 0, text.stderr
    assert "gap [feeds]" in text.stdout and "daily" not in text.stdout
    assert "Sun 2027-03-14 03:00 EDT (07:00 UTC)  gap [feeds]" in text.stdout
    unknown = dispatch("plan", "--schedule", "nope", "--root", str(root))
    assert unknown.returncode == 1 and "no valid schedule 'nope'" in unknown.stderr


def test_schedules_shows_each_digest_window(tmp_path: Path) -> None:
    root = make_site(tmp_path / "site")
    (root / "schedules.yaml").write_text(NEW_YORK.replace("2027-03-10", "2026-11-30 08:00"))
    result = dispatch("schedules", "--root", str(root))
    assert result.returncode == 0, result.stderr
    block = result.stdout.split("daily  [digest]")[1].split("gap  [feeds]")[0]
    assert "    window: 0 new articles since Mon 2026-11-30 08:00 (America/New_York)" in block


def test_a_date_option_that_is_not_a_date_names_the_option_once(example_site: Path) -> None:
    from click.testing import CliRunner

    from dispatch.cli import main

    for option in ("--until", "--from"):
        result = CliRunner().invoke(main, ["plan", option, "garbage",
                                           "--root", str(example_site)])
        assert result.exit_code == 1, result.output
        assert f"{option}: 'garbage' is not a date" in result.output
        assert result.output.count(option) == 1, result.output


def test_plan_refuses_dates_it_cannot_plan_instead_of_a_traceback(example_site: Path) -> None:
    """The ends of the calendar overflowed (a traceback), a plan to 9999
    walked every day for hours, and a --from after --until said nothing
    would fire."""
    from click.testing import CliRunner

    from dispatch.cli import main

    cases = [(["--from", "0001-01-01"], "--from: '0001-01-01' is not a date"),
             (["--until", "9999-12-31T23:59:59-05:00"], "is not a date"),
             (["--until", "9999-12-31"], "--until: '9999-12-31' is more than 10 years ahead"),
             (["--from", "2027-01-10", "--until", "2027-01-01"],
              "--from: '2027-01-10' is not before --until 2027-01-01 23:59")]
    for args, expected in cases:
        result = CliRunner().invoke(main, ["plan", *args, "--root", str(example_site)])
        assert isinstance(result.exception, SystemExit), result.output
        assert result.exit_code == 1 and expected in result.output, result.output


def test_plan_from_a_later_date_shows_a_frequent_schedule_there(example_site: Path) -> None:
    """Firings are counted from now with a cap (50,000): an every-5m
    schedule passed it after ~173 days, so a plan of a day half a year ahead
    said nothing would fire."""
    from click.testing import CliRunner

    from dispatch.cli import main

    (example_site / "schedules.yaml").write_text(
        "timezone: UTC\nschedules:\n  - id: often\n    kind: feeds\n    every: 5m\n")
    start = datetime.now(UTC) + timedelta(days=400)
    result = CliRunner().invoke(main, ["plan", "--from", f"{start:%Y-%m-%d}", "--until",
                                       f"{start:%Y-%m-%d}T00:30", "--json",
                                       "--root", str(example_site)])
    assert result.exit_code == 0, result.output
    assert [p["schedule"] for p in json.loads(result.output)] == ["often"] * 7  # 00:00 to 00:30
