"""Delivery pieces: the SMTP URL, reply classes, the token bucket, caps, local
capture into a maildir with late personalisation, and the CLI end to end."""

from __future__ import annotations

import email
import shutil
from email import policy
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.delivery_kit import T0, Clock, edition, seed

from dispatch.cli import main
from dispatch.config import load_settings
from dispatch.delivery import (
    CaptureTransport,
    DeliverySettings,
    TokenBucket,
    captured,
    classify,
    deliver,
    load_delivery_settings,
)
from dispatch.errors import ConfigError
from dispatch.outbox import edition_status, queue_edition
from dispatch.pipeline import default_stages, run_pass
from dispatch.store import open_store
from dispatch.unsubscribe import verify_token

REPO = Path(__file__).resolve().parent.parent


def settings_with(root: Path, extra: str = "", env: dict[str, str] | None = None
                  ) -> DeliverySettings:
    path = root / "dispatch.toml"
    path.write_text(path.read_text() + extra)
    return load_delivery_settings(load_settings(root), env or {})


def test_capture_is_the_default(site_root: Path) -> None:
    config = settings_with(site_root)
    assert config.transport == "capture" and config.smtp is None
    assert config.maildir == site_root / ".dispatch" / "maildir"


def test_one_url_configures_smtp(site_root: Path) -> None:
    env = {"DISPATCH_SMTP_URL": "smtp://ann%40corp:s%3Acret@mail.example.com:2525"
                                "?tls=starttls&connections=8&rate=12.5&hourly=1000&daily=9000"}
    config = settings_with(site_root, env=env)
    smtp = config.smtp
    assert smtp is not None and config.transport == "smtp"
    assert (smtp.host, smtp.port, smtp.username, smtp.password, smtp.tls) == (
        "mail.example.com", 2525, "ann@corp", "s:cret", "starttls")
    assert (config.connections, config.rate, config.hourly_cap, config.daily_cap) == (
        8, 12.5, 1000, 9000)
    assert "s:cret" not in repr(config)


def test_smtps_with_the_password_from_its_own_variable(site_root: Path) -> None:
    config = settings_with(site_root, '\n[delivery]\nsmtp_url = "smtps://relay.example.com"\n'
                                      "rate = 5\n",
                           {"DISPATCH_SMTP_PASSWORD": "pw"})
    assert config.smtp is not None
    assert (config.smtp.port, config.smtp.tls, config.smtp.password) == (465, "ssl", "pw")
    assert config.rate == 5 and config.connections == 4


@pytest.mark.parametrize(("extra", "field"), [
    ('\n[delivery]\nsmtp_url = "http://x"\n', "delivery.smtp_url"),
    ('\n[delivery]\nsmtp_url = "smtp://x?tls=maybe"\n', "delivery.smtp_url"),
    ('\n[delivery]\nsmtp_url = "smtp://x?speed=9"\n', "delivery.smtp_url"),
    ('\n[delivery]\ntransport = "smtp"\n', "delivery.transport"),
    ('\n[delivery]\nrate = "fast"\n', "delivery.rate"),
    ('\n[delivery]\nconnections = 0\n', "delivery.connections"),
])
def test_bad_delivery_settings_name_the_line(site_root: Path, extra: str, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_with(site_root, extra)
    problem = info.value.problems[0]
    assert problem.field == field and problem.line is not None and problem.path == "dispatch.toml"


@pytest.mark.parametrize(("code", "at_rcpt", "outcome"), [
    (250, False, "sent"), (421, True, "retry"), (450, True, "retry"), (451, False, "retry"),
    (452, True, "retry"), (454, False, "retry"), (550, True, "bounced"),
    (551, True, "bounced"), (553, True, "bounced"), (552, False, "failed"),
    (554, True, "failed"), (550, False, "failed"),
])
def test_reply_classes(code: int, at_rcpt: bool, outcome: str) -> None:
    assert classify(code, "text", at_recipient=at_rcpt).outcome == outcome


def test_token_bucket_paces_without_real_sleeping() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(5, 2, clock=lambda: now[0], sleep=sleep)
    for _ in range(12):
        bucket.take()
    # 2 from the initial burst, then 10 more at 5/s: 2 simulated seconds.
    assert now[0] == pytest.approx(2.0)
    assert len(slept) == 10
    bucket.slow_down()
    assert bucket.rate == 2.5
    assert TokenBucket(0).take() == 0.0


def test_capture_personalises_each_message_late(site_root: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCH_SECRET_KEY", "k")
    settings = load_settings(site_root)
    store = open_store(settings.database_url)
    emails = seed(store, 5)
    queue_edition(store, edition(), ["main"], T0)
    report = deliver(store, settings, T0, clock=Clock())
    assert report.sent == 5 and report.transport.startswith("capture")
    files = captured(settings.state_dir / "maildir")
    assert len(files) == 5 and not list((settings.state_dir / "maildir" / "tmp").iterdir())
    seen = {}
    for path in files:
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        seen[msg["Delivered-To"]] = msg
    assert set(seen) == set(emails)
    msg = seen[emails[3]]
    assert msg["To"] == f"Reader 3 <{emails[3]}>"
    url = msg["List-Unsubscribe"].strip("<>")
    assert url.startswith("https://journal.test/unsubscribe/")
    token = verify_token(b"k", url.rsplit("/", 1)[1])
    assert token is not None and token.scope == "e1"
    body = msg.get_body(("plain",))
    assert body is not None and "Dear Reader 3," in body.get_content()
    assert url in body.get_content()
    assert edition_status(store, "e1").reconciles


def test_caps_stop_the_run_and_keep_the_rest_queued(site_root: Path) -> None:
    settings = load_settings(site_root)
    store = open_store(settings.database_url)
    seed(store, 8)
    queue_edition(store, edition(), ["main"], T0)
    config = DeliverySettings(hourly_cap=5, maildir=site_root / "mail")
    report = deliver(store, settings, T0, config=config, clock=Clock())
    assert report.sent == 5 and report.stopped is not None and "cap" in report.stopped
    assert edition_status(store, "e1").pending == 3
    later = Clock(T0.replace(hour=T0.hour + 1, minute=1))
    assert deliver(store, settings, later(), config=config, clock=later).sent == 3


def test_dry_run_sends_nothing(site_root: Path) -> None:
    settings = load_settings(site_root)
    store = open_store(settings.database_url)
    seed(store, 4)
    queue_edition(store, edition(), ["main"], T0)
    report = deliver(store, settings, T0, dry_run=True)
    assert report.dry_run and report.due == 4 and "nothing sent" in report.summary()
    assert edition_status(store, "e1").pending == 4
    assert not (site_root / ".dispatch" / "maildir").exists()


def test_transport_protocol_is_small() -> None:
    transport = CaptureTransport(Path("/nonexistent"))
    assert {"name", "open"} <= set(dir(transport))


def test_example_site_end_to_end(example_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's path: import the sample list, send, look in the maildir."""
    monkeypatch.delenv("DISPATCH_SMTP_URL", raising=False)
    monkeypatch.delenv("DISPATCH_DATABASE_URL", raising=False)
    if not (example_site / "subscribers.csv").exists():
        shutil.copy(REPO / "subscribers.csv", example_site / "subscribers.csv")
    runner = CliRunner()
    root = ["--root", str(example_site)]
    imported = runner.invoke(main, ["subscribers", "import", str(example_site / "subscribers.csv"),
                                    "--list", "weekly", *root])
    assert imported.exit_code == 0, imported.output
    slug = "sleep-and-blood-pressure"
    dry = runner.invoke(main, ["send", slug, "--audience", "weekly", "--dry-run", *root])
    assert dry.exit_code == 0, dry.output
    assert "8 recipient(s)" in dry.output and "List-Unsubscribe:" in dry.output
    queued = runner.invoke(main, ["send", slug, "--audience", "weekly", *root])
    assert "queued for 8 recipient(s)" in queued.output
    again = runner.invoke(main, ["send", slug, "--audience", "weekly", *root])
    assert "already queued" in again.output
    typo = runner.invoke(main, ["send", slug, "--audience", "weekyl", *root])
    assert typo.exit_code == 1 and "no subscriber list named weekyl" in typo.output
    work = runner.invoke(main, ["worker", "--burst", *root])
    assert work.exit_code == 0 and "sent 8" in work.output, work.output
    shown = runner.invoke(main, ["queue", *root])
    assert "[complete]  queued 8 = sent 8 + failed 0" in shown.output
    assert len(captured(example_site / ".dispatch" / "maildir")) == 8
    # `dispatch run` has delivery as its last stage, draining the digest.
    assert default_stages()[-1][0] == "delivery"
    digest = runner.invoke(main, ["send", "--digest", "--audience", "weekly", "--since",
                                  "2026-01-01", *root])
    assert digest.exit_code == 0, digest.output
    settings = load_settings(example_site)
    store = open_store(settings.database_url)
    stages = [s for s in default_stages() if s[0] == "delivery"]
    # (the CLI queued at the real clock; this pass runs well after it)
    report = run_pass(settings, store, T0.replace(year=2030), stages=stages)
    assert "sent 8" in report.stages[-1].summary
    assert len(captured(example_site / ".dispatch" / "maildir")) == 16
    paused = runner.invoke(main, ["queue", "pause", "nope", *root])
    assert paused.exit_code == 1 and "no queued edition" in paused.output


def test_queue_controls_from_the_cli(site_root: Path) -> None:
    settings = load_settings(site_root)
    store = open_store(settings.database_url)
    seed(store, 6)
    queue_edition(store, edition(), ["main"], T0)
    runner = CliRunner()
    root = ["--root", str(site_root)]
    out = runner.invoke(main, ["queue", "pause", "e1", *root])
    assert out.exit_code == 0 and "e1: pause; now paused, 0 sent, 6 pending" in out.output
    assert deliver(store, settings, T0, clock=Clock()).sent == 0  # paused: nothing claimed
    out = runner.invoke(main, ["queue", "resume", "e1", *root])
    assert "now sending" in out.output
    out = runner.invoke(main, ["queue", "cancel", "e1", *root])
    assert "(6 row(s))" in out.output and "now cancelled" in out.output
    out = runner.invoke(main, ["queue", *root])
    line = "e1  [cancelled]  queued 6 = sent 0 + failed 0 + suppressed 0 + cancelled 6"
    assert line in out.output
    out = runner.invoke(main, ["queue", "retry", "e1", *root])
    assert out.exit_code == 0 and "(0 row(s))" in out.output
