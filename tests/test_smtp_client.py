"""dispatch's SMTP client against a controllable ESMTP server on 127.0.0.1:
round trips per message with and without PIPELINING / CHUNKING, replies
matched to the right recipient inside a pipelined group, a connection that
breaks mid-BDAT, a 421 mid-group, dot-stuffing, STARTTLS and AUTH."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from tests.delivery_kit import T0, Clock, edition, seed, smtp_config
from tests.esmtp_server import EsmtpServer

from dispatch.config import Settings, load_settings
from dispatch.delivery import deliver
from dispatch.delivery.settings import SmtpSettings
from dispatch.delivery.smtp import SmtpTransport
from dispatch.delivery.smtp_client import MAX_LINE, Reply, SmtpClient, SmtpError, dot_stuff
from dispatch.delivery.transport import Envelope, TransportUnavailable
from dispatch.jobs.states import ResultClass
from dispatch.outbox import edition_status, queue_edition
from dispatch.store.engine import Store
from dispatch.store.schema import outbox, subscribers

MESSAGE = b"Subject: hi\r\n\r\n.a line with a dot\r\n..two\r\nend . here\r\n.\r\nlast\r\n"


def client(server: EsmtpServer, **kwargs: object) -> SmtpClient:
    c = SmtpClient("127.0.0.1", server.port, timeout=5, helo="test.example",
                   **kwargs)  # type: ignore[arg-type]
    c.connect()
    return c


# (offers PIPELINING, offers CHUNKING) -> round trips per one-recipient message, path
SHAPES = [((True, True), 1, "BDAT"), ((True, False), 2, "DATA"),
          ((False, True), 3, "BDAT"), ((False, False), 4, "DATA")]


@pytest.mark.parametrize(("offers", "trips", "via"), SHAPES)
def test_round_trips_follow_what_the_server_offers(offers: tuple[bool, bool], trips: int,
                                                   via: str) -> None:
    # With PIPELINING the server holds its MAIL and RCPT replies until DATA
    # or BDAT arrives: a client that waited for them would time out here.
    with EsmtpServer(pipelining=offers[0], chunking=offers[1]) as server:
        c = client(server)
        results = [c.send("news@example.org", [f"r{i}@example.com"], MESSAGE) for i in range(3)]
        c.quit()
    assert all(r.delivered for r in results)
    assert [(m.recipients, m.content, m.via, m.round_trips) for m in server.received] == [
        ((f"r{i}@example.com",), MESSAGE, via, trips) for i in range(3)]


def test_the_client_can_be_told_to_ignore_what_is_offered() -> None:
    with EsmtpServer(pipelining=False, chunking=True) as server:
        c = client(server, chunking=False)
        assert c.send("news@example.org", ["a@example.com"], MESSAGE).delivered
        c.quit()
    assert [(m.via, m.round_trips) for m in server.received] == [("DATA", 4)]


@pytest.mark.parametrize("chunking", [True, False])
def test_a_refused_recipient_in_a_pipeline_is_matched_to_its_address(chunking: bool) -> None:
    refused = {"gone@example.com": "550 5.1.1 no such user",
               "busy@example.com": "452 4.2.2 mailbox full"}
    everyone = ["a@example.com", "gone@example.com", "b@example.com", "busy@example.com"]
    with EsmtpServer(chunking=chunking, rcpt_reply=refused.get) as server:
        c = client(server)
        mixed = c.send("news@example.org", everyone, MESSAGE)
        nobody = c.send("news@example.org", ["gone@example.com"], MESSAGE)
        after = c.send("news@example.org", ["c@example.com"], MESSAGE)  # same connection
        c.quit()
    assert [r.code for r in mixed.recipients] == [250, 550, 250, 452]
    assert mixed.accepted(everyone) == ["a@example.com", "b@example.com"]
    assert [r.code for r in nobody.recipients] == [550] and not nobody.delivered
    assert after.delivered and server.connections == 1
    assert [m.recipients for m in server.received] == [("a@example.com", "b@example.com"),
                                                       ("c@example.com",)]


def test_a_connection_dropped_mid_bdat_raises_and_the_next_one_works() -> None:
    with EsmtpServer(chunking=True, drop_bdat=lambda n: n == 2) as server:
        c = client(server)
        assert c.send("news@example.org", ["a@example.com"], MESSAGE).delivered
        with pytest.raises(SmtpError, match=r"closed|lost"):
            c.send("news@example.org", ["b@example.com"], MESSAGE * 200)
        assert not c.connected
        c = client(server)
        assert c.send("news@example.org", ["b@example.com"], MESSAGE).delivered
        c.quit()
    assert [m.recipients for m in server.received] == [("a@example.com",), ("b@example.com",)]


def test_a_421_inside_a_pipelined_group_is_every_answer_still_owed() -> None:
    with EsmtpServer(chunking=True,
                     rcpt_reply=lambda a: "421 4.7.0 too many, closing" if a.startswith("x")
                     else None) as server:
        c = client(server)
        done = c.send("news@example.org", ["a@example.com", "x@example.com", "b@example.com"],
                      MESSAGE)
    assert [r.code for r in done.recipients] == [250, 421, 421]
    assert done.data is not None and done.data.code == 421 and not done.delivered
    assert not c.connected and server.received == []


@contextmanager
def scripted(*pieces: bytes) -> Iterator[int]:
    """A server on 127.0.0.1 that writes ``pieces`` as separate segments, reads
    whatever comes, and stays silent until the client goes; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for piece in pieces:
                conn.sendall(piece)
                done.wait(0.01)  # each piece in a segment of its own
            conn.settimeout(5)
            while not done.is_set():
                try:
                    if not conn.recv(4096):
                        return
                except TimeoutError:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        done.set()
        thread.join()
        listener.close()


def test_replies_split_anywhere_or_sent_together_are_read_line_by_line() -> None:
    with scripted(b"22", b"0-first\r\n220 sec", b"ond\r\n",
                  b"250-sink\r\n250-PIPELINING\r\n250 SIZE 1000\r\n250 OK\r\n250 OK\r\n"
                  b"550 5.1.1 no\r\n") as port:
        c = SmtpClient("127.0.0.1", port, timeout=5, helo="test.example")
        c.connect()
        assert c.pipelining and c.extensions["size"] == "1000"
        # The rest of that last segment: three replies already read, taken in order.
        assert [c.read_reply() for _ in range(3)] == [Reply(250, "OK"), Reply(250, "OK"),
                                                     Reply(550, "5.1.1 no")]
        c.close()


def test_a_server_that_says_nothing_times_out() -> None:
    with scripted(b"220 hi\r\n", b"250 sink\r\n") as port:
        c = SmtpClient("127.0.0.1", port, timeout=0.2, helo="test.example")
        c.connect()
        with pytest.raises(SmtpError, match="waiting for a reply: timed out"):
            c.send("news@example.org", ["a@example.com"], MESSAGE)
        assert not c.connected


def test_a_reply_line_past_the_limit_is_refused() -> None:
    with scripted(b"220 " + b"x" * MAX_LINE + b"\r\n") as port:
        c = SmtpClient("127.0.0.1", port, timeout=5, helo="test.example")
        with pytest.raises(SmtpError, match="longer than"):
            c.connect()
        assert not c.connected


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.sampled_from([b".", b"..", b".x", b"", b"a.b", b" .", b"...",
                                           b"From x", b"\xc3\xa9t\xc3\xa9"]),
                          min_size=1, max_size=12))
    return b"Subject: t\r\n\r\n" + b"\r\n".join(lines) + b"\r\n"


@pytest.fixture(scope="module")
def plain_server() -> object:
    with EsmtpServer(pipelining=True, chunking=False) as server:
        yield server


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
@given(message=messages())
def test_dot_stuffing_survives_a_server_that_removes_it(plain_server: EsmtpServer,
                                                       message: bytes) -> None:
    c = client(plain_server)
    before = len(plain_server.received)
    assert c.send("news@example.org", ["a@example.com"], message).delivered
    c.quit()
    assert plain_server.received[before].content == message


def test_dot_stuffing_is_one_pass_over_the_message() -> None:
    body = b"x" * 30_000
    assert dot_stuff(body) is not None and dot_stuff(b".a\r\n.b") == b"..a\r\n..b"
    assert dot_stuff(body) == body  # nothing to do: the message itself, unchanged


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return str(cert), str(key)


def test_starttls_and_auth_through_the_transport(certificate: tuple[str, str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # The transport verifies the certificate against the system's trust
    # store; SSL_CERT_FILE makes this test's own CA that store.
    monkeypatch.setenv("SSL_CERT_FILE", certificate[0])
    with EsmtpServer(chunking=True, starttls=certificate, auth=("ann", "s3cret")) as server:
        good = SmtpSettings("localhost", server.port, "ann", "s3cret", tls="starttls", timeout=5)
        conn = SmtpTransport(good).open()
        result = conn.send(Envelope("news@example.org", "a@example.com", MESSAGE))
        conn.close()
        bad = SmtpSettings("localhost", server.port, "ann", "wrong", tls="starttls", timeout=5)
        with pytest.raises(TransportUnavailable, match=r"login refused .*535"):
            SmtpTransport(bad).open()
    assert result.klass is ResultClass.DELIVERED
    assert [(m.recipients, m.via) for m in server.received] == [(("a@example.com",), "BDAT")]
    assert "STARTTLS" in server.commands and "AUTH" in server.commands


def test_starttls_refused_when_not_offered() -> None:
    with EsmtpServer() as server, pytest.raises(TransportUnavailable, match="STARTTLS"):
        SmtpTransport(SmtpSettings("127.0.0.1", server.port, tls="starttls", timeout=5)).open()


def test_a_non_ascii_address_without_smtputf8_fails_that_row_only() -> None:
    with EsmtpServer(chunking=True) as server:
        conn = SmtpTransport(SmtpSettings("127.0.0.1", server.port, tls="none", timeout=5)).open()
        odd = conn.send(Envelope("news@example.org", "jörg@example.com", MESSAGE))
        fine = conn.send(Envelope("news@example.org", "joerg@example.com", MESSAGE))
        conn.close()
    assert odd.klass is ResultClass.PERMANENT and "SMTPUTF8" in odd.text
    assert fine.klass is ResultClass.DELIVERED and len(server.received) == 1


# --- the engine over the new client: each reply lands on its own row -------------------

@pytest.fixture
def site(site_root: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("DISPATCH_SECRET_KEY", "test-secret")
    return load_settings(site_root)


def test_one_refused_recipient_among_pipelined_sends_fails_its_own_row(
        store: Store, site: Settings) -> None:
    emails = seed(store, 30)
    gone = emails[7]
    queue_edition(store, edition(), ["main"], T0)
    with EsmtpServer(chunking=True, rcpt_reply=lambda a: "550 5.1.1 no such user"
                     if a == gone else None) as server:
        report = deliver(store, site, T0, config=smtp_config(server.port), clock=Clock())
    assert (report.sent, report.bounced) == (29, 1)
    assert Counter(m.recipients[0] for m in server.received) == {e: 1 for e in emails
                                                                 if e != gone}
    assert {m.round_trips for m in server.received} == {1}
    with store.read() as conn:
        rows = dict(conn.execute(select(subscribers.c.email, outbox.c.status)
                                 .join(outbox, outbox.c.subscriber_id == subscribers.c.id)).all())
    assert rows.pop(gone) == "failed" and set(rows.values()) == {"sent"}


def test_a_drop_mid_bdat_retries_that_row_and_nobody_else(store: Store, site: Settings) -> None:
    emails = seed(store, 20)
    queue_edition(store, edition(), ["main"], T0)
    clock = Clock()
    with EsmtpServer(chunking=True, drop_bdat=lambda n: n == 5) as server:
        first = deliver(store, site, T0, config=smtp_config(server.port, connections=1),
                        clock=clock)
        with store.read() as conn:
            waiting = conn.execute(select(subscribers.c.email, outbox.c.detail)
                                   .join(outbox, outbox.c.subscriber_id == subscribers.c.id)
                                   .where(outbox.c.status == "queued")).all()
        clock.advance(hours=1)
        second = deliver(store, site, T0, config=smtp_config(server.port, connections=1),
                         clock=clock)
    assert (first.sent, first.retried, second.sent) == (19, 1, 1)
    assert len(waiting) == 1 and "connection lost" in waiting[0].detail
    assert Counter(m.recipients[0] for m in server.received) == {e: 1 for e in emails}
    status = edition_status(store, "e1")
    assert status.sent == 20 and status.reconciles
