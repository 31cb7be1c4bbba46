"""The IMAP and POP3 bounce mailboxes against a real Dovecot over TLS
(verified against the test's own CA): recognised reports act and are moved
(IMAP) or remembered (POP3), unrecognised mail is left exactly as it was,
nothing is ever deleted. Marked ``mta``; skips, saying why, without Dovecot
or root."""

from __future__ import annotations

import imaplib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.bounce_kit import SentSite, arf_report, postfix_dsn, sent_site, stranger, vacation_reply
from tests.dovecot_kit import PASSWORD, USER, Dovecot, dovecot_unavailable, private_dovecot
from tests.web_kit import NOW, PEOPLE, SECRET

from dispatch.bounces.process import process_mailbox
from dispatch.errors import MailboxError

pytestmark = pytest.mark.mta
ALICE, BOB, CAROL = (email for email, _ in PEOPLE)
KEY = SECRET.encode()


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    why = dovecot_unavailable()
    if why:
        pytest.skip(why)
    with private_dovecot() as server:
        yield server


@pytest.fixture
def site(example_site: Path, monkeypatch: pytest.MonkeyPatch) -> SentSite:
    monkeypatch.setenv("DISPATCH_SECRET_KEY", SECRET)
    monkeypatch.setenv("DISPATCH_BOUNCE_PASSWORD", PASSWORD)
    return sent_site(example_site)


def _fill(dovecot: Dovecot, site: SentSite) -> dict[str, bytes]:
    messages = {"dsn": postfix_dsn(site.sent[ALICE]), "arf": arf_report(site.sent[BOB]),
                "vacation": vacation_reply(site.sent[CAROL], "x-autoreply"),
                "stranger": stranger()}
    for name, raw in messages.items():
        dovecot.deliver(name, raw)
    return messages


def _imap(dovecot: Dovecot) -> imaplib.IMAP4_SSL:
    conn = imaplib.IMAP4_SSL("127.0.0.1", dovecot.imaps,
                             ssl_context=ssl.create_default_context(cafile=str(dovecot.cafile)))
    conn.login(USER, PASSWORD)
    return conn


def _folder(conn: imaplib.IMAP4_SSL, name: str) -> list[tuple[bytes, bytes]]:
    """(flags, body) of every message in a folder, read without touching flags."""
    conn.select(f'"{name}"', readonly=True)
    _, data = conn.uid("SEARCH", "ALL")
    found = []
    for uid in data[0].split():
        _, parts = conn.uid("FETCH", uid, "(FLAGS BODY.PEEK[])")
        head, body = parts[0]
        found.append((head, body))
    return found


def test_imap_moves_recognised_reports_and_leaves_the_rest_untouched(
        dovecot: Dovecot, site: SentSite, monkeypatch: pytest.MonkeyPatch) -> None:
    messages = _fill(dovecot, site)
    monkeypatch.setenv("DISPATCH_BOUNCE_MAILBOX", dovecot.imaps_url())
    settings, store = site.site.settings, site.site.store

    dry = process_mailbox(settings, store, KEY, NOW, dry_run=True)
    assert dry.read == 4 and dry.recognised == 3 and dry.changed == 2
    assert site.site.status(ALICE) == "active"

    report = process_mailbox(settings, store, KEY, NOW)
    assert (report.read, report.recognised, report.untouched, report.changed) == (4, 3, 1, 2)
    assert [site.site.status(e) for e in (ALICE, BOB, CAROL)] == [
        "bounced", "complained", "active"]

    conn = _imap(dovecot)
    try:
        inbox = _folder(conn, "INBOX")
        assert [body.replace(b"\r\n", b"\n") for _, body in inbox] == [
            messages["stranger"].replace(b"\r\n", b"\n")]
        assert b"\\Seen" not in inbox[0][0], "reading must not even mark it seen"
        processed = _folder(conn, "dispatch-processed")
        assert len(processed) == 3
    finally:
        conn.logout()
    # A second pass does not download the stranger again; a rescan does,
    # and leaves it again.
    again = process_mailbox(settings, store, KEY, NOW)
    assert again.read == 0
    rescan = process_mailbox(settings, store, KEY, NOW, rescan=True)
    assert (rescan.read, rescan.recognised) == (1, 0)
    conn = _imap(dovecot)
    try:
        assert len(_folder(conn, "INBOX")) == 1
    finally:
        conn.logout()


def test_pop3_never_deletes_and_reads_each_message_once(
        dovecot: Dovecot, site: SentSite, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(dovecot, site)
    monkeypatch.setenv("DISPATCH_BOUNCE_MAILBOX", dovecot.pop3s_url())
    settings, store = site.site.settings, site.site.store
    report = process_mailbox(settings, store, KEY, NOW)
    assert (report.read, report.recognised, report.untouched) == (4, 3, 1)
    assert [site.site.status(e) for e in (ALICE, BOB, CAROL)] == [
        "bounced", "complained", "active"]
    files = [p for sub in ("new", "cur") for p in (dovecot.maildir / sub).iterdir()]
    assert len(files) == 4, "POP3 processing deletes nothing"
    again = process_mailbox(settings, store, KEY, NOW)
    assert again.read == 0  # every UIDL is remembered
    # A new arrival is read; the old ones are not read again.
    dovecot.deliver("late", postfix_dsn(site.sent[CAROL], message_id="<late@mx>"))
    late = process_mailbox(settings, store, KEY, NOW)
    assert (late.read, late.recognised) == (1, 1)
    assert site.site.status(CAROL) == "bounced"


def test_wrong_password_and_untrusted_certificate_are_clear_errors(
        dovecot: Dovecot, site: SentSite, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, store = site.site.settings, site.site.store
    monkeypatch.setenv("DISPATCH_BOUNCE_MAILBOX", dovecot.imaps_url())
    monkeypatch.setenv("DISPATCH_BOUNCE_PASSWORD", "wrong")
    with pytest.raises(MailboxError, match=r"cannot open imaps://bounces@127\.0\.0\.1"):
        process_mailbox(settings, store, KEY, NOW)
    monkeypatch.setenv("DISPATCH_BOUNCE_PASSWORD", PASSWORD)
    untrusted = dovecot.pop3s_url().split("?")[0]  # no cafile: the test CA is not trusted
    monkeypatch.setenv("DISPATCH_BOUNCE_MAILBOX", untrusted)
    with pytest.raises(MailboxError, match="CERTIFICATE_VERIFY_FAILED"):
        process_mailbox(settings, store, KEY, NOW)
    assert "wrong" not in dovecot.imaps_url()


def test_imap_without_move_copies_then_expunges_only_that_message(
        dovecot: Dovecot, site: SentSite, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server without MOVE (RFC 6851): COPY, flag \\Deleted and UID EXPUNGE
    (RFC 4315) that one message; another message someone flagged \\Deleted
    stays."""
    from dispatch.bounces import mailbox as mailbox_module

    _fill(dovecot, site)
    monkeypatch.setenv("DISPATCH_BOUNCE_MAILBOX", dovecot.imaps_url())
    real_init = mailbox_module.ImapBox.__init__

    def without_move(self: mailbox_module.ImapBox, *args: object, **kwargs: object) -> None:
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]
        self.capabilities.discard("MOVE")

    monkeypatch.setattr(mailbox_module.ImapBox, "__init__", without_move)
    conn = _imap(dovecot)
    try:  # the owner's client has flagged the stranger \Deleted, not yet expunged
        conn.select("INBOX")
        _, data = conn.uid("SEARCH", "ALL")
        for uid in data[0].split():
            _, parts = conn.uid("FETCH", uid, "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            if b"stranger" in parts[0][1]:
                conn.uid("STORE", uid, "+FLAGS", r"(\Deleted)")
    finally:
        conn.logout()
    report = process_mailbox(site.site.settings, site.site.store, KEY, NOW)
    assert (report.read, report.recognised) == (4, 3)
    conn = _imap(dovecot)
    try:
        inbox = _folder(conn, "INBOX")
        assert len(inbox) == 1 and b"\\Deleted" in inbox[0][0]  # the owner's, untouched
        assert len(_folder(conn, "dispatch-processed")) == 3
    finally:
        conn.logout()


@pytest.mark.parametrize("url", ["pop3s://ann:S3cretpw@mail.example:abc",
                                 "imaps://ann:S3cr/etpw@mail.example/INBOX",
                                 "imap://ann:S3cretpw@mail.example/INBOX",
                                 "pop3s://ann:S3cr@etpw@mail.example:99999"])
def test_a_bad_mailbox_url_never_shows_its_password(tmp_path: Path, url: str) -> None:
    """The error quoted the whole URL (and the parser's words quoted a piece
    of a password split by an unencoded '/') into terminals and logs."""
    from dispatch.bounces.mailboxurl import parse_url

    with pytest.raises(MailboxError) as info:
        parse_url(url, None, tmp_path)
    text = str(info.value)
    assert text.startswith("mailbox URL: ") and "mail.example" not in text, text
    assert not any(piece in text for piece in ("S3cr", "etpw")), text
