"""Bounces, complaints and mailto unsubscribes read from a maildir: the VERP
return path and mailto token on real captured messages, each report family
classified, the policy, never-destructive processing, history and reactivate.
Runs on SQLite and on PostgreSQL (when DISPATCH_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from tests.bounce_kit import (
    BOUNCES,
    Sent,
    SentSite,
    arf_report,
    exchange_bounce,
    exim_bounce,
    gmail_bounce,
    mailto_unsubscribe,
    postfix_dsn,
    qmail_bounce,
    send_more,
    sent_site,
    stranger,
    stray_bounce,
    vacation_reply,
    write_maildir,
)
from tests.web_kit import NOW, PEOPLE, SECRET

from dispatch.bounces import verp
from dispatch.bounces.classify import Locals, classify
from dispatch.bounces.history import record_reactivation
from dispatch.bounces.model import Kind, kind_of_status
from dispatch.bounces.process import process_mailbox
from dispatch.bounces.verp import tagged_address, verify_token
from dispatch.cli import main
from dispatch.errors import MailboxError
from dispatch.store.schema import bounce_events, outbox, subscribers
from dispatch.subscribers import reactivate_subscribers

ALICE, BOB, CAROL = (email for email, _ in PEOPLE)
KEY = SECRET.encode()
LOCALS = Locals(KEY, "bounces", "unsubscribe")


@pytest.fixture
def site(example_site: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> SentSite:
    monkeypatch.setenv("DISPATCH_SECRET_KEY", SECRET)
    monkeypatch.delenv("DISPATCH_BOUNCE_MAILBOX", raising=False)
    monkeypatch.setenv("DISPATCH_DATABASE_URL", database_url)  # the CLI's database too
    return sent_site(example_site, database_url)


@pytest.fixture
def sqlite_site(example_site: Path, monkeypatch: pytest.MonkeyPatch) -> SentSite:
    monkeypatch.setenv("DISPATCH_SECRET_KEY", SECRET)
    monkeypatch.delenv("DISPATCH_BOUNCE_MAILBOX", raising=False)
    return sent_site(example_site)


def row_id(site: SentSite, email: str) -> int:
    with site.site.store.read() as conn:
        return int(conn.execute(
            select(outbox.c.id).join(subscribers, subscribers.c.id == outbox.c.subscriber_id)
            .where(subscribers.c.email == email)).scalar_one())


def events(site: SentSite) -> list[dict[str, object]]:
    with site.site.store.read() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(bounce_events).order_by(bounce_events.c.id))]


# --- the token ---------------------------------------------------------------

def test_token_names_the_row_fits_a_local_part_and_cannot_be_forged() -> None:
    biggest = 2**63 - 1
    address = tagged_address("bounces@example.org", KEY, "bounce", biggest)
    local = address.split("@")[0]
    assert len(local) <= 64 and local.startswith("bounces+")
    token = local.split("+", 1)[1]
    found = verify_token(KEY, "bounce", token)
    assert found is not None and found.row_id == biggest
    # Servers may change the case of an address: the token survives.
    assert verify_token(KEY, "bounce", token.upper()) == found
    # Another row, another key, another purpose, a truncated MAC: refused.
    row, mac = token.split("-")
    assert verify_token(KEY, "bounce", f"{int(row) - 1}-{mac}") is None
    assert verify_token(b"other key", "bounce", token) is None
    assert verify_token(KEY, "unsubscribe", token) is None
    assert verify_token(KEY, "bounce", token[:-1]) is None
    assert verify_token(KEY, "bounce", "") is None


@pytest.mark.parametrize("base", ["bounces+x@example.org", "not-an-address",
                                  "a" * 28 + "@example.org"])
def test_bounce_address_that_cannot_carry_a_token_is_a_config_error(
        site_root: Path, base: str) -> None:
    (site_root / "dispatch.toml").write_text(
        (site_root / "dispatch.toml").read_text() + f'\n[bounces]\naddress = "{base}"\n')
    result = CliRunner().invoke(main, ["check", "--root", str(site_root)])
    assert result.exit_code == 1
    assert "bounces.address" in result.output and "Traceback" not in result.output


def test_each_message_leaves_with_its_own_verp_return_path_and_mailto(site: SentSite) -> None:
    assert set(site.sent) == {ALICE, BOB, CAROL}
    for email, sent in site.sent.items():
        local, domain = sent.return_path.split("@")
        assert domain == "journal.test" and local.startswith("bounces+")
        token = verify_token(KEY, "bounce", local.split("+", 1)[1])
        assert token is not None and token.row_id == row_id(site, email)
        mail_local = sent.mailto.split("@")[0]
        assert mail_local.startswith("unsubscribe+")
        assert sent.mailto.endswith("@journal.test?subject=unsubscribe")
        unsub = verify_token(KEY, "unsubscribe", mail_local.split("+", 1)[1])
        assert unsub is not None and unsub.row_id == row_id(site, email)


# --- classification, family by family ------------------------------------------

FAMILIES: list[tuple[str, Callable[[Sent], bytes], str, Kind, str | None]] = [
    ("postfix DSN 5.1.1", postfix_dsn, "dsn", Kind.HARD, "5.1.1"),
    ("DSN 4.2.2 failed", lambda s: postfix_dsn(s, status="4.2.2"), "dsn", Kind.SOFT, "4.2.2"),
    ("DSN delayed", lambda s: postfix_dsn(s, status="4.4.1", action="delayed"), "dsn",
     Kind.SOFT, "4.4.1"),
    ("DSN 5.7.1 policy", lambda s: postfix_dsn(
        s, status="5.7.1", diagnostic="smtp; 550 5.7.1 Message rejected as spam"), "dsn",
     Kind.SOFT, "5.7.1"),
    ("DSN 5.2.2 mailbox full", lambda s: postfix_dsn(s, status="5.2.2"), "dsn", Kind.SOFT,
     "5.2.2"),
    ("DSN 5.0.0, specific code in the text", lambda s: postfix_dsn(
        s, status="5.0.0", diagnostic="smtp; 550 5.7.1 Service unavailable; client host "
                                       "blocked using a blocklist"), "dsn", Kind.SOFT, "5.7.1"),
    ("DSN 5.0.0, mailbox gone", lambda s: postfix_dsn(
        s, status="5.0.0", diagnostic="smtp; 550 Requested action not taken: mailbox "
                                       "unavailable (user unknown)"), "dsn", Kind.HARD, "5.0.0"),
    ("DSN 5.0.0, no reason", lambda s: postfix_dsn(
        s, status="5.0.0", diagnostic="smtp; 554 Transaction failed"), "dsn", Kind.SOFT,
     "5.0.0"),
    ("DSN delivered", lambda s: postfix_dsn(s, status="2.0.0", action="delivered"), "dsn",
     Kind.IGNORED, "2.0.0"),
    ("exim", exim_bounce, "bounce", Kind.HARD, "5.1.1"),
    ("qmail", qmail_bounce, "bounce", Kind.HARD, "5.1.1"),
    ("exchange", exchange_bounce, "bounce", Kind.HARD, "5.1.10"),
    ("gmail failure", gmail_bounce, "bounce", Kind.HARD, "5.1.1"),
    ("gmail delay", lambda s: gmail_bounce(s, delay=True), "bounce", Kind.SOFT, "4.4.1"),
    ("ARF abuse", arf_report, "arf", Kind.COMPLAINT, "abuse"),
    ("ARF not-spam", lambda s: arf_report(s, "not-spam"), "arf", Kind.IGNORED, "not-spam"),
    ("vacation auto-submitted", lambda s: vacation_reply(s, "auto-submitted"), "autoreply",
     Kind.AUTOREPLY, None),
    ("vacation x-autoreply", lambda s: vacation_reply(s, "x-autoreply"), "autoreply",
     Kind.AUTOREPLY, None),
    ("vacation precedence", lambda s: vacation_reply(s, "precedence"), "autoreply",
     Kind.AUTOREPLY, None),
    ("vacation subject", lambda s: vacation_reply(s, "subject-only"), "autoreply",
     Kind.AUTOREPLY, None),
    ("vacation encoded subject", lambda s: vacation_reply(s, "encoded-subject"), "autoreply",
     Kind.AUTOREPLY, None),
    ("mailto unsubscribe", mailto_unsubscribe, "unsubscribe", Kind.UNSUBSCRIBE, None),
]


@pytest.mark.parametrize(("name", "build", "fmt", "kind", "code"), FAMILIES,
                         ids=[f[0] for f in FAMILIES])
def test_each_report_family_is_classified_and_names_its_message(
        sqlite_site: SentSite, name: str, build: Callable[[Sent], bytes], fmt: str, kind: Kind,
        code: str | None) -> None:
    sent = sqlite_site.sent[BOB]
    report = classify(build(sent), LOCALS)
    assert report.recognised, name
    assert report.format == fmt
    assert [f.kind for f in report.findings] == [kind]
    assert report.findings[0].status_code == code
    rows = report.tokens.bounce_rows + report.tokens.unsubscribe_rows
    assert rows == (row_id(sqlite_site, BOB),) or any(
        link.subscriber_id == sqlite_site.site.ids[BOB] for link in report.tokens.links)


def test_unrecognised_messages_are_unknown(sqlite_site: SentSite) -> None:
    for raw in (stranger(), stray_bounce(), b"\x00\xff not a message at all",
                # Our own newsletter forwarded back by a reader: not a request.
                sqlite_site.sent[ALICE].raw):
        assert not classify(raw, LOCALS).recognised
    # A forged token (right shape, wrong MAC) names nobody.
    forged = postfix_dsn(sqlite_site.sent[ALICE]).replace(
        sqlite_site.sent[ALICE].return_path.encode(), b"bounces+1-aaaaaaaaaaaaaaaa@journal.test")
    forged_report = classify(forged, LOCALS)
    assert not forged_report.tokens.bounce_rows


def test_status_rules() -> None:
    assert kind_of_status("5.1.1") is Kind.HARD
    assert kind_of_status("5.1.10") is Kind.HARD
    assert kind_of_status("5.2.1") is Kind.HARD
    assert kind_of_status("5.4.4") is Kind.HARD
    for soft in ("4.2.2", "4.7.0", "5.7.1", "5.7.26", "5.2.2", "5.3.4", "5.1.8", "5.6.0", ""):
        assert kind_of_status(soft) is Kind.SOFT, soft


# --- processing a maildir ----------------------------------------------------

def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_process_changes_the_right_subscribers_and_never_destroys_anything(
        site: SentSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    box = tmp_path / "bounces"
    paths = write_maildir(box, {
        "dsn": postfix_dsn(site.sent[ALICE]),
        "arf": arf_report(site.sent[BOB]),
        "unsub": mailto_unsubscribe(site.sent[CAROL]),
        "vacation": vacation_reply(site.sent[CAROL], "auto-submitted"),
        "stranger": stranger(),
        "stray": stray_bounce(),
    })
    monkeypatch.setenv("DISPATCH_BOUNCE_MAILBOX", f"maildir://{box}")
    root = str(site.site.root)
    before = _tree(box)

    dry = CliRunner().invoke(main, ["bounces", "process", "--dry-run", "--root", root])
    assert dry.exit_code == 0, dry.output
    assert "dry run:" in dry.output and "would change 3 subscriber(s)" in dry.output
    assert _tree(box) == before, "a dry run moves nothing"
    assert {site.site.status(e) for e in (ALICE, BOB, CAROL)} == {"active"}
    assert events(site) == []

    result = CliRunner().invoke(main, ["bounces", "process", "--root", root])
    assert result.exit_code == 0, result.output
    assert "6 message(s) read, 4 recognised, 2 left untouched" in result.output
    assert site.site.status(ALICE) == "bounced"
    assert site.site.status(BOB) == "complained"
    assert site.site.status(CAROL) == "unsubscribed"  # the vacation reply changed nothing
    # Recognised: moved, byte for byte, into the processed subfolder.
    processed = box / ".dispatch-processed" / "cur"
    moved = {p.name.split(":2,")[0]: p.read_bytes() for p in processed.iterdir()}
    assert set(moved) == {paths[n].name for n in ("dsn", "arf", "unsub", "vacation")}
    for name in ("dsn", "arf", "unsub", "vacation"):
        assert moved[paths[name].name] == before[f"new/{paths[name].name}"]
    # Unrecognised: exactly where they were, untouched.
    for name in ("stranger", "stray"):
        assert paths[name].read_bytes() == before[f"new/{paths[name].name}"]
    assert sorted(p.name for p in (box / "new").iterdir()) == sorted(
        paths[n].name for n in ("stranger", "stray"))

    recorded = {(e["email"], e["kind"]): e for e in events(site)}
    dsn = recorded[(ALICE, "hard")]
    assert dsn["status_code"] == "5.1.1"
    assert "User unknown" in str(dsn["diagnostic"])
    assert dsn["report_id"] == "<20261201120501.4AB1C2@mx.example.com>"
    assert dsn["outbox_id"] == row_id(site, ALICE) and dsn["edition_id"] == site.site.edition_id
    assert recorded[(BOB, "complaint")]["report_id"] == "<arf-1@fbl.example.com>"
    assert recorded[(CAROL, "autoreply")]["action"] == "no change: automatic reply, not a bounce"
    assert recorded[(CAROL, "unsubscribe")]["source"] == "mailbox"

    # Reading again finds nothing new (the two strangers are remembered, not
    # downloaded again, and still untouched); --rescan reads them once more.
    again = process_mailbox(site.site.settings, site.site.store, KEY, NOW)
    assert again.read == 0
    rescan = CliRunner().invoke(main, ["bounces", "process", "--rescan", "--root", root])
    assert "2 message(s) read, 0 recognised, 2 left untouched" in rescan.output
    for name in ("stranger", "stray"):
        assert paths[name].read_bytes() == before[f"new/{paths[name].name}"]
    # The same report put back changes nothing twice.
    write_maildir(box, {"dsn-again": postfix_dsn(site.sent[ALICE])})
    third = process_mailbox(site.site.settings, site.site.store, KEY, NOW)
    assert third.recognised == 1 and third.changed == 0
    assert third.decisions[0].repeated
    assert len(events(site)) == 4  # dsn, arf, unsubscribe, vacation: once each


def test_soft_bounces_suppress_after_the_limit_within_the_window(
        site: SentSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    box = tmp_path / "soft"
    monkeypatch.setenv("DISPATCH_BOUNCE_MAILBOX", f"maildir://{box}")
    settings, store = site.site.settings, site.site.store
    messages = [site.sent, *send_more(site, 2)]  # three messages to each reader

    def soft(n: int, who: str, message: int, days: float) -> None:
        write_maildir(box, {f"s{n}": postfix_dsn(messages[message][who], status="4.2.2",
                                                  message_id=f"<soft-{n}@mx>")})
        process_mailbox(settings, store, KEY, NOW + timedelta(days=days))

    # Alice: 3 messages soft-bounced, but the first falls out of the 30-day window.
    soft(1, ALICE, 0, 0)
    soft(2, ALICE, 1, 31)
    soft(3, ALICE, 2, 40)
    assert site.site.status(ALICE) == "active"
    assert "counted: 2 of 3" in str(events(site)[-1]["action"])
    # Carol: one message reported three times (a delay, then retries) is one.
    for n, days in ((4, 0), (5, 1), (6, 2)):
        soft(n, CAROL, 0, days)
    assert site.site.status(CAROL) == "active"
    assert "counted: 1 of 3" in str(events(site)[-1]["action"])
    # Bob: three messages within 30 days: suppressed on the third, not before.
    soft(7, BOB, 0, 0)
    soft(8, BOB, 1, 10)
    assert site.site.status(BOB) == "active"
    soft(9, BOB, 2, 20)
    assert site.site.status(BOB) == "bounced"
    assert str(events(site)[-1]["action"]) == "suppressed: 3 of 3 soft bounces in 30 days"
    # Re-activated, Bob starts counting again from zero.
    at = NOW + timedelta(days=21)
    bob = site.site.ids[BOB]
    assert reactivate_subscribers(store, [bob], at, "test") == 1
    record_reactivation(store, [(bob, BOB, "test")], at)
    soft(10, BOB, 2, 22)
    assert site.site.status(BOB) == "active"
    assert "counted: 1 of 3" in str(events(site)[-1]["action"])


def test_hard_bounce_and_complaint_each_suppress_at_once(
        site: SentSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    box = tmp_path / "b"
    monkeypatch.setenv("DISPATCH_BOUNCE_MAILBOX", f"maildir://{box}")
    write_maildir(box, {"q": qmail_bounce(site.sent[ALICE]),
                        "g": gmail_bounce(site.sent[CAROL]),
                        "a": arf_report(site.sent[BOB])})
    report = process_mailbox(site.site.settings, site.site.store, KEY, NOW)
    assert report.changed == 3
    assert [site.site.status(e) for e in (ALICE, BOB, CAROL)] == [
        "bounced", "complained", "bounced"]
    # A complaint about an address that already bounced still wins.
    write_maildir(box, {"a2": arf_report(site.sent[ALICE], message_id="<arf-2@fbl>")})
    process_mailbox(site.site.settings, site.site.store, KEY, NOW)
    assert site.site.status(ALICE) == "complained"


def test_reactivate_undoes_a_bounce_never_a_complaint_and_show_lists_history(
        site: SentSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    box = tmp_path / "r"
    monkeypatch.setenv("DISPATCH_BOUNCE_MAILBOX", f"maildir://{box}")
    write_maildir(box, {"d": postfix_dsn(site.sent[ALICE]), "a": arf_report(site.sent[BOB])})
    process_mailbox(site.site.settings, site.site.store, KEY, NOW)
    root = str(site.site.root)
    runner = CliRunner()

    shown = runner.invoke(main, ["subscribers", "show", ALICE, "--root", root])
    assert shown.exit_code == 0, shown.output
    for expected in ("bounced", "weekly", site.site.edition_id, "sent", "hard", "5.1.1",
                     "User unknown", "<20261201120501.4AB1C2@mx.example.com>",
                     "suppressed: hard bounce", "hard 5.1.1"):
        assert expected in shown.output, expected

    refused = runner.invoke(main, ["subscribers", "reactivate", BOB, "--include-unsubscribed",
                                   "--root", root])
    assert refused.exit_code == 1
    assert "complained" in refused.output and "never" in refused.output
    assert site.site.status(BOB) == "complained"

    done = runner.invoke(main, ["subscribers", "reactivate", ALICE, "--root", root])
    assert done.exit_code == 0, done.output
    assert site.site.status(ALICE) == "active"
    shown = runner.invoke(main, ["subscribers", "show", ALICE, "--root", root])
    assert "reactivated" in shown.output

    missing = runner.invoke(main, ["subscribers", "show", "nobody@example.com", "--root", root])
    assert missing.exit_code == 1 and "no subscriber" in missing.output


def test_each_run_pass_reads_the_mailbox_when_it_is_set(
        site: SentSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = str(site.site.root)
    quiet = CliRunner().invoke(main, ["run", "--once", "--root", root])
    assert "no bounce mailbox configured" in quiet.output, quiet.output
    box = tmp_path / "pass"
    write_maildir(box, {"e": exim_bounce(site.sent[CAROL])})
    monkeypatch.setenv("DISPATCH_BOUNCE_MAILBOX", f"maildir://{box}")
    result = CliRunner().invoke(main, ["run", "--once", "--root", root])
    assert "1 recognised" in result.output, result.output
    assert site.site.status(CAROL) == "bounced"
    # A mailbox that cannot be read is reported; the rest of the pass goes on.
    monkeypatch.setenv("DISPATCH_BOUNCE_MAILBOX", f"maildir://{tmp_path / 'missing'}")
    broken = CliRunner().invoke(main, ["run", "--once", "--root", root])
    assert "bounce mailbox not read" in broken.output and "is not a maildir" in broken.output
    assert "delivery" in broken.output and "Traceback" not in broken.output


@pytest.mark.parametrize(("url", "expected"), [
    ("ftp://host/x", "unknown scheme"),
    ("imaps://host/INBOX", "needs a user and a host"),
    ("imap://user@mail.example.org/INBOX", "sends the password in clear"),
    ("maildir://host/path", "maildir URL has no host"),
    ("maildir:///does/not/exist", "is not a maildir"),
])
def test_bad_mailbox_urls_say_what_was_expected(sqlite_site: SentSite, url: str,
                                                 expected: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCH_BOUNCE_MAILBOX", url)
    with pytest.raises(MailboxError, match=expected):
        process_mailbox(sqlite_site.site.settings, sqlite_site.site.store, KEY, NOW)
    result = CliRunner().invoke(main, ["bounces", "process", "--root",
                                       str(sqlite_site.site.root)])
    assert result.exit_code == 1 and expected in result.output
    assert "Traceback" not in result.output


def test_report_without_message_id_is_keyed_by_its_bytes(sqlite_site: SentSite) -> None:
    raw = qmail_bounce(sqlite_site.sent[ALICE]).replace(
        b"Message-ID: <20261201120700.1234.qmail@qmail.example.org>\r\n", b"")
    report = classify(raw, LOCALS)
    assert report.report_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert BOUNCES.split("@")[0] == LOCALS.bounce


def test_check_reports_bounce_setups_that_would_not_work(
        site_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPATCH_BOUNCE_MAILBOX", raising=False)
    monkeypatch.delenv("DISPATCH_BOUNCE_PASSWORD", raising=False)
    # With the key set, check prints no development-key note, whose path
    # (this test's folder) would contain the word being looked for.
    monkeypatch.setenv("DISPATCH_SECRET_KEY", "test-secret")
    toml = site_root / "dispatch.toml"
    base = toml.read_text()
    runner = CliRunner()

    def check() -> str:
        result = runner.invoke(main, ["check", "--root", str(site_root)])
        assert "Traceback" not in result.output
        return result.output

    assert "bounce" not in check().lower()
    toml.write_text(base + '\n[email]\nunsubscribe_mailto = "unsubscribe@journal.test"\n')
    assert "unsubscribe_mailto is set but no bounce mailbox is read" in check()
    monkeypatch.setenv("DISPATCH_BOUNCE_MAILBOX", "imaps://bounces@mail.example.org/INBOX")
    out = check()
    assert "DISPATCH_BOUNCE_PASSWORD: warning: not set" in out
    assert "bounces.address: warning: not set" in out
    monkeypatch.setenv("DISPATCH_BOUNCE_MAILBOX", "imap://bounces@mail.example.org/INBOX")
    assert "DISPATCH_BOUNCE_MAILBOX: mailbox URL" in check()
    monkeypatch.setenv("DISPATCH_BOUNCE_PASSWORD", "x")
    toml.write_text(base + '\n[bounces]\naddress = "bounces@journal.test"\n')
    monkeypatch.setenv("DISPATCH_BOUNCE_MAILBOX", "maildir:///var/mail/bounces")
    assert "bounce" not in check().lower()


def test_a_failure_between_the_decision_and_the_move_counts_nothing_twice(
        sqlite_site: SentSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dispatch.bounces.process as process_module
    from dispatch.bounces.mailbox import MaildirBox

    box = tmp_path / "crash"
    messages = {f"m{i}": postfix_dsn(sqlite_site.sent[who], status="4.2.2",
                                     message_id=f"<crash-{i}@mx>")
                for i, who in enumerate((ALICE, BOB, CAROL, ALICE))}
    write_maildir(box, messages)
    monkeypatch.setenv("DISPATCH_BOUNCE_MAILBOX", f"maildir://{box}")
    monkeypatch.setattr(process_module, "BATCH", 2)
    real_done = MaildirBox.done
    calls = {"n": 0}

    def failing_done(self: MaildirBox, item: object, recognised: bool) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # the second batch is committed, then the disk fails
            raise OSError("disk full")
        real_done(self, item, recognised)  # type: ignore[arg-type]

    monkeypatch.setattr(MaildirBox, "done", failing_done)
    settings, store = sqlite_site.site.settings, sqlite_site.site.store
    with pytest.raises(MailboxError, match="disk full"):
        process_mailbox(settings, store, KEY, NOW)
    recorded = len(events(sqlite_site))
    assert recorded == 4  # both batches' decisions were committed
    monkeypatch.setattr(MaildirBox, "done", real_done)
    again = process_mailbox(settings, store, KEY, NOW)
    assert again.read == 2 and again.recognised == 2
    assert all(d.repeated for d in again.decisions)
    assert len(events(sqlite_site)) == recorded
    assert not list((box / "new").iterdir())


def test_a_report_without_the_verp_token_is_matched_by_the_returned_unsubscribe_link(
        sqlite_site: SentSite) -> None:
    """Mail sent before [bounces] address was set came back to the sender's
    own address; the returned headers' signed unsubscribe link still names
    the reader and the edition."""
    sent = sqlite_site.sent[BOB]
    raw = postfix_dsn(sent).replace(sent.return_path.encode(), b"journal@journal.test")
    report = classify(raw, LOCALS)
    assert report.recognised and not report.tokens.bounce_rows
    [link] = report.tokens.links
    assert link.subscriber_id == sqlite_site.site.ids[BOB]
    assert link.scope == sqlite_site.site.edition_id
    with sqlite_site.site.store.write() as conn:
        from dispatch.bounces.process import apply_report
        from dispatch.bounces.settings import bounce_settings

        config = bounce_settings(sqlite_site.site.settings.bounces, {})
        [decision] = apply_report(conn, sqlite_site.site.store, config, "mailbox", report, NOW)
    assert decision.target is not None and decision.target.outbox_id == row_id(sqlite_site, BOB)
    assert sqlite_site.site.status(BOB) == "bounced"


def test_two_readers_of_one_maildir_move_a_report_once(sqlite_site: SentSite,
                                                       tmp_path: Path) -> None:
    """A standby `dispatch run` reading the same maildir: the second move of
    a report the first already moved is not an error."""
    from dispatch.bounces.mailbox import MaildirBox

    box = tmp_path / "two"
    write_maildir(box, {"d": postfix_dsn(sqlite_site.sent[ALICE])})
    first = MaildirBox(box, "dispatch-processed", set(), lambda uid, state: None)
    second = MaildirBox(box, "dispatch-processed", set(), lambda uid, state: None)
    [item] = list(first.items())
    [same] = list(second.items())
    first.done(item, True)
    second.done(same, True)
    assert [p.name for p in (box / ".dispatch-processed" / "cur").iterdir()] == [
        item.uid.split("/")[1] + ":2,"]


SCARY = ["permanent error", "could not be delivered", "550 5.1.1", "user unknown",
         "Undeliverable:", "Delivery Status Notification (Failure)", "does not exist",
         "4.2.2 mailbox full", "abuse", "spam", "unsubscribe", "Out of Office", "Re:",
         "hello", "vacation", "Mail delivery failed", "X-Failed", "returned mail"]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
@given(subject=st.lists(st.sampled_from(SCARY), max_size=4).map(" ".join),
       body=st.lists(st.sampled_from([*SCARY, "\n"]), max_size=12).map(" ".join),
       auto=st.sampled_from(["", "Auto-Submitted: auto-replied\r\n", "X-Autoreply: yes\r\n",
                             "Precedence: auto_reply\r\n"]))
def test_a_person_s_mail_to_the_return_path_is_never_a_bounce_or_complaint(
        sqlite_site: SentSite, subject: str, body: str, auto: str) -> None:
    """Whatever it says, mail from a person (not a mail system, not a report)
    to the VERP address never bounces, complains or unsubscribes anyone."""
    sent = sqlite_site.sent[CAROL]
    raw = (f"From: Carol <{sent.email}>\r\nTo: {sent.return_path}\r\n{auto}"
           f"Subject: {subject}\r\nMessage-ID: <p@example.com>\r\n\r\n{body}\r\n").encode()
    report = classify(raw, LOCALS)
    kinds = {f.kind for f in report.findings}
    assert not kinds & {Kind.HARD, Kind.SOFT, Kind.COMPLAINT, Kind.UNSUBSCRIBE}, report


@given(mac=st.binary(min_size=10, max_size=10))
def test_the_token_letters_are_base32_lower_case(mac: bytes) -> None:
    assert verp._b32(mac) == base64.b32encode(mac).decode("ascii").lower()
