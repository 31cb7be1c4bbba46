"""The SMTP transport against real servers on 127.0.0.1: the client's own
MAIL/RCPT/DATA (the same bytes on the wire as smtplib's), which refusals are
hard bounces, and a server that accepts connections but never answers."""

from __future__ import annotations

import smtplib
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from tests.delivery_kit import (
    T0,
    Clock,
    SilentServer,
    Sink,
    edition,
    seed,
    site_settings,
    smtp_config,
    start_sink,
)

from dispatch.config import Settings
from dispatch.delivery import DeliveryReport, deliver
from dispatch.delivery.settings import SmtpSettings
from dispatch.delivery.smtp import SmtpTransport
from dispatch.delivery.smtp_client import _PLAIN, dot_stuff, quote_address
from dispatch.delivery.transport import Envelope
from dispatch.outbox import edition_status, queue_edition
from dispatch.store.engine import Store
from dispatch.store.schema import outbox, subscribers


@pytest.fixture
def settings(site_root: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("DISPATCH_SECRET_KEY", "test-secret")
    return site_settings(site_root)


@given(st.binary(max_size=64) | st.lists(st.sampled_from([b".", b"\r", b"\n", b"a", b".."]),
                                         max_size=24).map(b"".join))
def test_dot_stuffing_matches_smtplib(data: bytes) -> None:
    assert dot_stuff(data) == smtplib._quote_periods(data)  # type: ignore[attr-defined]


@given(st.from_regex(_PLAIN, fullmatch=True))
def test_plain_addresses_are_quoted_as_smtplib_would(address: str) -> None:
    assert quote_address(address) == smtplib.quoteaddr(address) == f"<{address}>"


@given(st.text(max_size=30))
def test_any_address_is_quoted_as_smtplib_would(address: str) -> None:
    assert quote_address(address) == smtplib.quoteaddr(address)


def test_leading_dots_and_odd_addresses_survive_a_real_server() -> None:
    sink = Sink()
    ctl = start_sink(sink)
    try:
        conn = SmtpTransport(SmtpSettings("127.0.0.1", ctl.port, tls="none", timeout=10)).open()
        message = (b"Subject: dots\r\n\r\n.starts with a dot\r\n..two\r\nmiddle . dot\r\n"
                   b".\r\nno final line end")
        first = conn.send(Envelope("Sender Name <news@example.org>", "reader@example.com",
                                   message))
        second = conn.send(Envelope("news@example.org", "o'neil+tag@mail.example.com",
                                    b".\r\n"))
        conn.close()
    finally:
        ctl.stop()
    assert (first.outcome, second.outcome) == ("sent", "sent")
    assert sink.accepted == [("reader@example.com", message + b"\r\n"),
                             ("o'neil+tag@mail.example.com", b".\r\n")]




# Refusals about the sender, the relay or the connection: the row fails, the
# reader stays active (marking them bounced would suppress real people).
POLICY_REFUSALS = [
    "550 5.7.1 Unable to relay",
    "550 Relaying denied",
    "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org",
    "550 5.7.26 Unauthenticated email from example.org is not accepted",
    "553 5.1.8 <news@example.org>: Sender address rejected: Domain not found",
    "550 Requested action not taken: mailbox unavailable",  # RFC 5321's text, also policy
]
# Refusals that say the mailbox itself is gone: hard bounces.
MAILBOX_REFUSALS = [
    "550 5.1.1 <x@example.com>: Recipient address rejected: User unknown",
    "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
    "550 5.2.1 The email account that you tried to reach is disabled",
    "550 No such user here",
]


def test_only_mailbox_refusals_are_hard_bounces(store: Store, settings: Settings) -> None:
    replies = POLICY_REFUSALS + MAILBOX_REFUSALS
    emails = seed(store, len(replies) + 4)
    refused = dict(zip(emails, replies, strict=False))
    queue_edition(store, edition(), ["main"], T0)
    sink = Sink(rcpt_reply=lambda address: refused.get(address))
    ctl = start_sink(sink)
    try:
        report = deliver(store, settings, T0, config=smtp_config(ctl.port), clock=Clock())
    finally:
        ctl.stop()
    assert set(sink.counts()) == set(emails[len(replies):])
    assert (report.failed, report.bounced) == (len(replies), len(MAILBOX_REFUSALS))
    with store.read() as conn:
        status = dict(conn.execute(select(subscribers.c.email, subscribers.c.status)).all())
        detail = dict(conn.execute(
            select(subscribers.c.email, outbox.c.detail)
            .join(outbox, outbox.c.subscriber_id == subscribers.c.id)
            .where(outbox.c.status == "failed")).all())
    for address, reply in refused.items():
        bounced = reply in MAILBOX_REFUSALS
        assert status[address] == ("bounced" if bounced else "active"), reply
        assert detail[address] == ("hard bounce: " if bounced else "") + reply
    s = edition_status(store, "e1")
    assert (s.sent, s.failed) == (4, len(replies)) and s.reconciles


def test_an_unanswering_server_is_not_redialled_for_every_row(store: Store,
                                                               settings: Settings) -> None:
    """A server that accepts the connection and never greets: the first row's
    timeout hands the whole batch back, and the worker backs off instead of
    dialling (and waiting out a timeout) once per row."""
    seed(store, 20)
    queue_edition(store, edition(), ["main"], T0)
    server = SilentServer()
    base = smtp_config(server.port, connections=1, batch_size=20)
    assert base.smtp is not None
    config = replace(base, smtp=replace(base.smtp, timeout=0.2))
    stop = threading.Event()
    reports: list[DeliveryReport] = []
    worker = threading.Thread(target=lambda: reports.append(deliver(
        store, settings, T0, burst=False, config=config, clock=Clock(), stop=stop)))
    worker.start()
    try:
        # Not burst mode: the worker keeps running; wait (event-driven, with
        # a generous bound against hanging) until the batch has come back.
        for _ in range(3000):
            with store.read() as conn:
                rows = conn.execute(select(outbox.c.status, outbox.c.detail,
                                           outbox.c.attempts)).all()
            if all(r.status == "queued" and r.detail for r in rows):
                break
            stop.wait(0.02)
    finally:
        stop.set()
        worker.join()
        server.stop()
    assert server.connections == 1
    assert {(r.status, r.attempts) for r in rows} == {("queued", 0)}
    assert all("cannot connect" in r.detail for r in rows)
    assert reports[0].released == 20 and reports[0].sent == reports[0].failed == 0


@pytest.mark.timeout(120)  # a bound: a lane starved of a pool connection waits 30 s, then fails
def test_sixteen_lanes_share_a_few_connections_for_their_checks(store: Store,
                                                                settings: Settings) -> None:
    # Each lane checks the recipient before every send; the checks run on a
    # few shared connections, so more lanes than the engine's pool (5 + 10
    # overflow) still deliver everything.
    emails = seed(store, 400)
    queue_edition(store, edition(), ["main"], T0)
    sink = Sink()
    ctl = start_sink(sink)
    try:
        report = deliver(store, settings, T0, config=smtp_config(ctl.port, connections=16,
                                                                  batch_size=20), clock=Clock())
    finally:
        ctl.stop()
    assert report.stopped is None and report.sent == 400
    assert sink.counts() == {e: 1 for e in emails}
    assert store.engine.pool.checkedout() == 0  # every check connection went back
