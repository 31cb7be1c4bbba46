"""Delivery pieces: the SMTP URL, reply classes, the token bucket, caps, local
capture into a maildir with late personalisation, and the CLI end to end."""

from __future__ import annotations

import email
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path
from typing import Any, cast

import pytest
from click.testing import CliRunner
from tests.delivery_kit import T0, Clock, Sink, edition, seed, smtp_config, start_sink

from dispatch.cli import main
from dispatch.config import Settings, load_settings
from dispatch.delivery import (
    CaptureTransport,
    DeliverySettings,
    TokenBucket,
    captured,
    classify,
    deliver,
    engine,
    load_delivery_settings,
)
from dispatch.delivery.settings import config_problems
from dispatch.errors import ConfigError, Severity
from dispatch.jobs import worker
from dispatch.outbox import RetryPolicy, edition_status, queue_edition
from dispatch.pipeline import default_stages, run_pass
from dispatch.store import open_store
from dispatch.store.engine import Store
from dispatch.unsubscribe import verify_token

REPO = Path(__file__).resolve().parent.parent


def settings_with(root: Path, extra: str = "", env: dict[str, str] | None = None
                  ) -> DeliverySettings:
    path = root / "dispatch.toml"
    path.write_text(path.read_text() + extra)
    return load_delivery_settings(load_settings(root), env or {})


@pytest.fixture
def site_store(db_site: Path) -> Iterator[tuple[Settings, Store]]:
    settings = load_settings(db_site)
    store = open_store(settings.database_url)
    yield settings, store
    store.dispose()


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


@pytest.mark.parametrize("password", ["S3cr#t/pw", "12345/67", "S3cr?tls=none", "Xq#Zv@Wk"])
def test_a_password_never_leaks_into_the_url_error(site_root: Path, password: str) -> None:
    """An unencoded '#', '/' or '?' splits the URL early: the error says the
    URL could not be parsed, where it came from, and how to fix it, and
    quotes no piece of the password (nor blames dispatch.toml)."""
    url = f"smtp://ann:{password}@mail.example.com:587"
    with pytest.raises(ConfigError) as info:
        settings_with(site_root, env={"DISPATCH_SMTP_URL": url})
    text = str(info.value)
    pieces = {piece for piece in password.replace("#", "/").replace("?", "/").replace("@", "/")
              .split("/") if len(piece) >= 2}
    assert pieces and not any(piece in text for piece in pieces)
    assert "could not be parsed" in text and "DISPATCH_SMTP_URL" in text
    assert "%23" in text and "DISPATCH_SMTP_PASSWORD" in text
    assert "dispatch.toml" not in text
    (problem,) = info.value.problems
    assert problem.path == "environment variable DISPATCH_SMTP_URL"


def test_a_bad_url_in_dispatch_toml_names_its_line(site_root: Path) -> None:
    with pytest.raises(ConfigError) as info:
        settings_with(site_root, '\n[delivery]\nsmtp_url = "smtp://ann:S3cr#t@host:587"\n')
    (problem,) = info.value.problems
    assert problem.path == "dispatch.toml" and problem.field == "delivery.smtp_url"
    assert problem.line is not None and "S3cr" not in str(problem) and "t@host" not in str(problem)
    result = CliRunner().invoke(main, ["check", "--root", str(site_root)])
    assert result.exit_code == 1 and "could not be parsed" in result.output
    assert "S3cr" not in result.output and "Traceback" not in result.output


def test_a_bad_value_in_the_environment_url_is_blamed_on_the_environment(
        site_root: Path) -> None:
    """rate=fast in DISPATCH_SMTP_URL is the variable's mistake: it must not
    be reported at the line of [delivery] rate, which holds a good value."""
    with pytest.raises(ConfigError) as info:
        settings_with(site_root, "\n[delivery]\nrate = 2\n",
                      {"DISPATCH_SMTP_URL": "smtp://mail.example.com?rate=fast&bogus=1"})
    assert sorted(str(p) for p in info.value.problems) == [
        # The value is not quoted: it is a piece of the URL.
        "environment variable DISPATCH_SMTP_URL: rate in the SMTP URL is not valid "
        "(expected a number ≥ 0)",
        "environment variable DISPATCH_SMTP_URL: unknown URL parameter(s) bogus (expected "
        "tls, helo, connections, rate, burst, hourly, daily, timeout)"]
    with pytest.raises(ConfigError) as info:
        settings_with(site_root, env={"DISPATCH_SMTP_URL": "mail.example.com"})
    assert "does not start with smtp:// or smtps://" in str(info.value)


def test_smtp_url_in_the_file_means_smtp(site_root: Path) -> None:
    config = settings_with(site_root, '\n[delivery]\nsmtp_url = "smtp://relay.example.com"\n')
    assert config.transport == "smtp" and config.smtp is not None and not config.warnings
    assert not config_problems(load_settings(site_root))


def test_an_explicit_other_transport_wins_but_check_warns(site_root: Path) -> None:
    """The shipped dispatch.toml says transport = "capture": adding an
    smtp_url beside it must not be silently ignored."""
    config = settings_with(site_root, '\n[delivery]\ntransport = "capture"\n'
                                      'smtp_url = "smtp://relay.example.com"\n')
    assert config.transport == "capture"
    (warning,) = config_problems(load_settings(site_root))
    lines = (site_root / "dispatch.toml").read_text().splitlines()
    assert warning.severity is Severity.WARNING and warning.field == "delivery.transport"
    assert warning.line is not None and lines[warning.line - 1].startswith("transport =")
    assert "smtp_url" in warning.message
    result = CliRunner().invoke(main, ["check", "--root", str(site_root)])
    assert f"dispatch.toml:{warning.line}: delivery.transport: warning:" in result.output
    # The environment's URL retargets a deployment whatever the file says.
    env = settings_with(site_root, env={"DISPATCH_SMTP_URL": "smtp://other.example.com"})
    assert env.transport == "smtp" and env.smtp is not None
    assert env.smtp.host == "other.example.com"


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


@pytest.mark.parametrize(("code", "text", "at_rcpt", "outcome"), [
    (250, "ok", False, "sent"), (421, "closing", True, "retry"), (450, "busy", True, "retry"),
    (451, "4.3.0 later", False, "retry"), (452, "4.5.3 too many", True, "retry"),
    (454, "Throttling failure", False, "retry"),
    (550, "5.1.1 <a@example.com>: User unknown", True, "bounced"),
    (550, "5.1.10 Recipient not found by SMTP address lookup", True, "bounced"),
    (550, "5.2.1 Mailbox disabled", True, "bounced"),
    (553, "5.1.3 bad recipient address syntax", True, "bounced"),
    (550, "No such user here", True, "bounced"),
    (551, "User unknown; mailbox does not exist", True, "bounced"),
    (550, "5.1.1 User unknown", False, "failed"),  # after DATA: about the message
    (550, "5.7.1 Unable to relay", True, "failed"),
    (550, "Unable to relay", True, "failed"),
    (554, "5.7.1 Client host blocked using zen.spamhaus.org", True, "failed"),
    (550, "5.7.26 Unauthenticated email is not accepted", True, "failed"),
    (550, "5.4.5 Daily sending quota exceeded", True, "failed"),
    (553, "5.1.8 Sender address rejected: Domain not found", True, "failed"),
    (552, "5.2.2 Mailbox full", True, "failed"),
    (550, "Requested action not taken: mailbox unavailable", True, "failed"),
    (554, "No such user", True, "failed"), (552, "too big", False, "failed"),
])
def test_reply_classes(code: int, text: str, at_rcpt: bool, outcome: str) -> None:
    assert classify(code, text, at_recipient=at_rcpt).outcome == outcome


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


def test_capture_personalises_each_message_late(site_store: tuple[Settings, Store],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCH_SECRET_KEY", "k")
    settings, store = site_store
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


def test_caps_stop_the_run_and_keep_the_rest_queued(site_store: tuple[Settings, Store],
                                                     db_site: Path) -> None:
    settings, store = site_store
    seed(store, 8)
    queue_edition(store, edition(), ["main"], T0)
    config = DeliverySettings(hourly_cap=5, maildir=db_site / "mail")
    report = deliver(store, settings, T0, config=config, clock=Clock(), owner="w1")
    assert report.sent == 5 and report.stopped is not None and "cap" in report.stopped
    assert edition_status(store, "e1").pending == 3
    # The cap is counted in the database: another worker in the same hour gets nothing.
    other = deliver(store, settings, T0 + timedelta(minutes=30), config=config,
                    clock=Clock(T0 + timedelta(minutes=30)), owner="w2")
    assert other.sent == 0 and other.stopped is not None and "cap" in other.stopped
    later = Clock(T0.replace(hour=T0.hour + 1, minute=1))
    assert deliver(store, settings, later(), config=config, clock=later, owner="w2").sent == 3


def test_dry_run_sends_nothing(site_store: tuple[Settings, Store], db_site: Path) -> None:
    settings, store = site_store
    seed(store, 4)
    queue_edition(store, edition(), ["main"], T0)
    report = deliver(store, settings, T0, dry_run=True)
    assert report.dry_run and report.due == 4 and "nothing sent" in report.summary()
    assert edition_status(store, "e1").pending == 4
    assert not (db_site / ".dispatch" / "maildir").exists()


def test_transport_protocol_is_small() -> None:
    transport = CaptureTransport(Path("/nonexistent"))
    assert {"name", "open"} <= set(dir(transport))


def test_example_site_end_to_end(example_site: Path, database_url: str,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's path: import the sample list, send, look in the maildir."""
    monkeypatch.delenv("DISPATCH_SMTP_URL", raising=False)
    monkeypatch.setenv("DISPATCH_DATABASE_URL", database_url)
    monkeypatch.setenv("DISPATCH_SECRET_KEY", "k")  # required with PostgreSQL
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
    # A folded header (the example's List-Id is longer than one line) is shown
    # unfolded, with one space after its name.
    assert "List-Id: Northfield" in dry.output and ":  " not in dry.output, dry.output
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
    store.dispose()
    assert "sent 8" in report.stages[-1].summary
    assert len(captured(example_site / ".dispatch" / "maildir")) == 16
    paused = runner.invoke(main, ["queue", "pause", "nope", *root])
    assert paused.exit_code == 1 and "no queued edition" in paused.output


def test_queue_controls_from_the_cli(site_store: tuple[Settings, Store], db_site: Path) -> None:
    settings, store = site_store
    seed(store, 6)
    queue_edition(store, edition(), ["main"], T0)
    runner = CliRunner()
    root = ["--root", str(db_site)]
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
    assert out.exit_code == 1 and "e1 is cancelled" in out.output


def test_retry_on_a_paused_edition_says_it_stays_paused(site_store: tuple[Settings, Store],
                                                        db_site: Path) -> None:
    settings, store = site_store
    seed(store, 30)
    queue_edition(store, edition(), ["main"], T0)
    sink = Sink(rcpt_reply=lambda address: "550 5.7.1 Unable to relay")
    ctl = start_sink(sink)
    config = smtp_config(ctl.port, connections=1, batch_size=5,
                         policy=RetryPolicy(error_budget=0.1, error_budget_min=5))
    try:
        report = deliver(store, settings, T0, config=config, clock=Clock())
    finally:
        ctl.stop()
    status = edition_status(store, "e1")
    assert status.state == "paused" and status.pending > 0  # the error budget stopped it
    runner = CliRunner()
    root = ["--root", str(db_site)]
    out = runner.invoke(main, ["queue", "retry", "e1", *root])
    assert out.exit_code == 0 and f"({report.failed} row(s)); now paused" in out.output, out.output
    assert "still paused" in out.output and "dispatch queue resume e1" in out.output
    assert edition_status(store, "e1").state == "paused"


def test_pause_or_cancel_of_a_finished_edition_is_refused_and_retry_still_works(
        site_store: tuple[Settings, Store], db_site: Path) -> None:
    settings, store = site_store
    seed(store, 6)
    queue_edition(store, edition(), ["main"], T0)
    sink = Sink(rcpt_reply=lambda address: "550 5.7.1 Unable to relay")
    ctl = start_sink(sink)
    try:
        assert deliver(store, settings, T0, config=smtp_config(ctl.port),
                       clock=Clock()).failed == 6
    finally:
        ctl.stop()
    runner = CliRunner()
    root = ["--root", str(db_site)]
    for action in ("pause", "cancel"):
        out = runner.invoke(main, ["queue", action, "e1", *root])
        assert out.exit_code == 1 and f"nothing to {action}" in out.output, out.output
    resumed = runner.invoke(main, ["queue", "resume", "e1", *root])
    assert resumed.exit_code == 1 and "resume changed nothing" in resumed.output
    assert edition_status(store, "e1").state == "complete"  # still, not "cancelled"
    retried = runner.invoke(main, ["queue", "retry", "e1", *root])
    assert retried.exit_code == 0 and "(6 row(s))" in retried.output


def test_failure_reasons_are_shown_after_sending(example_site: Path, database_url: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`dispatch send --deliver` and `dispatch queue -v` say why rows failed."""
    relay = {"alan.turing@example.com", "tim.berners-lee@example.com",
             "barbara.liskov@example.com"}
    # Bounce replies quote the recipient, as real servers do: one reason still.
    sink = Sink(rcpt_reply=lambda a: "550 5.7.1 Unable to relay" if a in relay
                else f"550 5.1.1 <{a}>: no such user" if a.lower().startswith(("edsger", "grace"))
                else None)
    ctl = start_sink(sink)
    monkeypatch.setenv("DISPATCH_DATABASE_URL", database_url)
    monkeypatch.setenv("DISPATCH_SECRET_KEY", "k")
    monkeypatch.setenv("DISPATCH_SMTP_URL", f"smtp://127.0.0.1:{ctl.port}?tls=none")
    runner = CliRunner()
    root = ["--root", str(example_site)]
    try:
        imported = runner.invoke(main, ["subscribers", "import",
                                        str(example_site / "subscribers.csv"), "--list",
                                        "weekly", *root])
        assert imported.exit_code == 0, imported.output
        sent = runner.invoke(main, ["send", "sleep-and-blood-pressure", "--audience", "weekly",
                                    "--edition-id", "e1", "--deliver", *root])
    finally:
        ctl.stop()
    assert sent.exit_code == 0, sent.output
    assert "sent 3" in sent.output and "failed 5" in sent.output
    assert "3 × 550 5.7.1 Unable to relay" in sent.output
    assert "2 × hard bounce: 550 5.1.1 <…>: no such user" in sent.output
    quiet = runner.invoke(main, ["queue", *root])
    assert "Unable to relay" not in quiet.output
    verbose = runner.invoke(main, ["queue", "-v", *root])
    assert "3 × 550 5.7.1 Unable to relay" in verbose.output


def test_the_lease_is_looked_at_at_most_every_few_tenths_of_a_second(
        site_store: tuple[Settings, Store], db_site: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The throttle on lease checks within a batch: with the monotonic clock
    frozen, a batch looks at its lease once, even though simulated time races
    past half the lease (which would otherwise renew it every few rows)."""
    settings, store = site_store
    seed(store, 20)
    queue_edition(store, edition(), ["main"], T0)
    renewals: list[datetime] = []
    real_renew = engine.renew

    def counting_renew(store: Store, token: str, now: datetime, policy: RetryPolicy) -> int:
        renewals.append(now)
        return real_renew(store, token, now, policy)

    monkeypatch.setattr(engine, "renew", counting_renew)
    monkeypatch.setattr(worker, "_monotonic", lambda: 1000.0)
    clock = Clock()

    def racing() -> datetime:
        return clock.advance(seconds=60)  # every look at the clock: a minute later

    config = DeliverySettings(maildir=db_site / "mail", batch_size=20, connections=1,
                              policy=RetryPolicy(lease_seconds=300))
    report = deliver(store, settings, T0, config=config, clock=racing)
    assert report.sent == 20 and report.lost == 0
    assert renewals == []


@pytest.mark.parametrize(("burst", "claimed", "expected"), [
    (True, 0, 50),      # plenty left: full batches
    (True, 960, 10),    # 40 left over 4 lanes: an equal share each
    (True, 1000, 5),    # past the count taken at the start: small batches
    (False, 1000, 50),  # a long-running worker: editions queued later get full batches
])
def test_batch_size_shrinks_only_at_the_tail_of_a_burst(burst: bool, claimed: int,
                                                        expected: int) -> None:
    unused = cast(Any, None)
    run: worker._Run[Any, Any, Any] = worker._Run(
        channel=unused, options=worker.Options(lanes=4, batch_size=50), policy=RetryPolicy(),
        clock=unused, burst=burst, stop=unused, owner="t", bucket=unused, progress=None,
        total=1000, serialise_writes=False)
    run.claimed = claimed
    assert run.batch_limit() == expected


def test_the_same_digest_command_tomorrow_sends_nothing_twice(
        example_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's main job, run again another day: the digest is named by
    the articles it holds, so the same articles make the same edition."""
    import dispatch.cli.queue as queue_cli

    monkeypatch.delenv("DISPATCH_SMTP_URL", raising=False)
    shutil.copy(REPO / "subscribers.csv", example_site / "subscribers.csv")
    runner = CliRunner()
    root = ["--root", str(example_site)]
    assert runner.invoke(main, ["subscribers", "import", str(example_site / "subscribers.csv"),
                                "--list", "weekly", *root]).exit_code == 0
    command = ["send", "--digest", "--audience", "weekly", "--since", "2026-10-01",
               "--deliver", *root]
    today = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    for day in range(3):
        monkeypatch.setattr(queue_cli, "now", lambda day=day: today + timedelta(days=day))
        result = runner.invoke(main, command)
        assert result.exit_code == 0, result.output
        assert ("queued for 8 recipient(s)" in result.output) == (day == 0), result.output
    assert len(captured(example_site / ".dispatch" / "maildir")) == 8


def test_the_outage_back_off_starts_short_again_once_the_server_answers() -> None:
    from dispatch.delivery.transport import TransportUnavailable
    from dispatch.jobs.worker import OUTAGE_START

    clock = Clock()
    unused = cast(Any, None)
    run: worker._Run[Any, Any, Any] = worker._Run(
        channel=unused, options=worker.Options(), policy=RetryPolicy(), clock=clock,
        burst=False, stop=unused, owner="t", bucket=unused, progress=None, total=0,
        serialise_writes=False)
    for _ in range(4):
        run.server_down(TransportUnavailable("connection refused"))
    assert run.down_until == T0 + timedelta(seconds=OUTAGE_START * 8)  # 5, 10, 20, 40 s
    run.server_up()
    run.server_down(TransportUnavailable("connection refused"))
    assert run.down_until == T0 + timedelta(seconds=OUTAGE_START)
