"""A lane's bookkeeping overlaps the next message's envelope round trip.

The worker writes message N+1's envelope (MAIL, and with PIPELINING its RCPT
and DATA too), then commits message N and re-checks N+1's reader while those
commands travel, and sends N+1's content only after both. Here: a veto that
arrives after the envelope went out ends the transaction and delivers
nothing, and message N is marked sent before N+1's content reaches the
server, on SQLite and PostgreSQL, for every shape of server. The next
message is built while the previous one's answer is on the way; one that
cannot be built fails its own row.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import or_, select
from tests.delivery_kit import T0, Clock, edition, seed, smtp_config
from tests.esmtp_server import EsmtpServer

from dispatch.config import Settings, load_settings
from dispatch.delivery import deliver, engine
from dispatch.delivery.personalise import MessageSource
from dispatch.delivery.smtp_client import SmtpClient
from dispatch.errors import TemplateError
from dispatch.outbox import queue_edition
from dispatch.outbox.control import cancel
from dispatch.outbox.lease import ClaimedRow
from dispatch.store.engine import Store
from dispatch.store.schema import outbox, outbox_sent, subscribers
from dispatch.subscribers.repository import set_status

# (PIPELINING, CHUNKING) offered by the server
SHAPES = [(True, True), (True, False), (False, True), (False, False)]
MESSAGE = b"Subject: hi\r\n\r\nbody\r\n"


@pytest.fixture
def site(site_root: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("DISPATCH_SECRET_KEY", "test-secret")
    return load_settings(site_root)


def marked_sent(store: Store) -> set[str]:
    # Sent: the row says so, or (SQLite) it waits in outbox_sent for its
    # batch's settle.
    with store.read() as conn:
        return set(conn.execute(
            select(subscribers.c.email).join(outbox, outbox.c.subscriber_id == subscribers.c.id)
            .where(or_(outbox.c.status == "sent",
                       outbox.c.id.in_(select(outbox_sent.c.row_id))))).scalars())


def statuses(store: Store) -> dict[str, str]:
    with store.read() as conn:
        return dict(conn.execute(  # type: ignore[arg-type]
            select(subscribers.c.email, outbox.c.status)
            .join(outbox, outbox.c.subscriber_id == subscribers.c.id)).all())


@pytest.mark.parametrize(("pipelining", "chunking"), SHAPES)
def test_a_begun_message_given_up_sends_nothing_and_the_next_one_goes(
        pipelining: bool, chunking: bool) -> None:
    with EsmtpServer(pipelining=pipelining, chunking=chunking) as server:
        client = SmtpClient("127.0.0.1", server.port, timeout=5, helo="test.example")
        client.connect()
        client.begin("news@example.org", ["gone@example.com"], MESSAGE).abort()
        if not client.connected:  # given up inside DATA: only hanging up ends it
            client.connect()
        done = client.send("news@example.org", ["kept@example.com"], MESSAGE)
        client.quit()
    assert done.delivered
    assert [m.recipients for m in server.received] == [("kept@example.com",)]
    if pipelining and not chunking:
        assert server.connections == 2
    elif pipelining:  # the one-write transaction had not begun at all
        assert server.commands.count("MAIL") == 1
    else:
        assert "RSET" in server.commands and server.connections == 1


@pytest.mark.parametrize(("pipelining", "chunking"), SHAPES)
def test_an_unsubscribe_seen_after_the_envelope_went_out_delivers_nothing(
        store: Store, site: Settings, pipelining: bool, chunking: bool) -> None:
    emails = seed(store, 6)
    queue_edition(store, edition(), ["main"], T0)
    with store.read() as conn:
        ids = dict(conn.execute(select(subscribers.c.email, subscribers.c.id)).all())

    def on_accept(count: int) -> None:
        # The second message is taken; the lane's next one (its batch goes
        # in row order) is for emails[2], who leaves now, before that
        # message is begun and re-checked.
        if count == 2:
            with store.write() as conn:
                set_status(conn, [ids[emails[2]]], "unsubscribed", T0)

    with EsmtpServer(pipelining=pipelining, chunking=chunking, on_accept=on_accept) as server:
        report = deliver(store, site, T0, config=smtp_config(server.port, connections=1),
                         clock=Clock())
    assert [m.recipients[0] for m in server.received] == [e for e in emails if e != emails[2]]
    assert (report.sent, report.suppressed, report.lost) == (5, 1, 0)
    assert statuses(store) == {e: "suppressed" if e == emails[2] else "sent" for e in emails}


@pytest.mark.parametrize(("pipelining", "chunking"), SHAPES)
def test_a_cancel_seen_after_the_envelope_went_out_begins_no_more_messages(
        store: Store, site: Settings, pipelining: bool, chunking: bool) -> None:
    emails = seed(store, 8)
    queue_edition(store, edition(), ["main"], T0)

    def on_accept(count: int) -> None:
        if count == 2:
            cancel(store, "e1", T0)

    with EsmtpServer(pipelining=pipelining, chunking=chunking, on_accept=on_accept) as server:
        report = deliver(store, site, T0, config=smtp_config(server.port, connections=1),
                         clock=Clock())
    assert [m.recipients[0] for m in server.received] == emails[:2]
    assert (report.sent, report.cancelled) == (2, 6)
    # One envelope was begun and given up; the rest were checked first.
    begun = 2 if pipelining and chunking else 3
    assert server.commands.count("MAIL") == begun
    assert sorted(statuses(store).values()) == ["cancelled"] * 6 + ["sent"] * 2


@pytest.mark.parametrize(("pipelining", "chunking"), SHAPES)
def test_each_message_is_marked_sent_before_the_next_ones_content_arrives(
        store: Store, site: Settings, pipelining: bool, chunking: bool) -> None:
    emails = seed(store, 8)
    queue_edition(store, edition(), ["main"], T0)
    late: list[tuple[int, set[str]]] = []
    server: EsmtpServer

    def on_accept(count: int) -> None:
        # Runs when message ``count``'s content has arrived, before its reply.
        with server.lock:
            earlier = {m.recipients[0] for m in server.received[:count - 1]}
        missing = earlier - marked_sent(store)
        if missing:
            late.append((count, missing))

    server = EsmtpServer(pipelining=pipelining, chunking=chunking, on_accept=on_accept)
    with server:
        report = deliver(store, site, T0, config=smtp_config(server.port, connections=1),
                         clock=Clock())
    assert report.sent == 8 and len(server.received) == 8
    assert late == []
    assert set(statuses(store).values()) == {"sent"} and set(emails) == marked_sent(store)


@pytest.mark.parametrize(("pipelining", "chunking"), [(True, True), (False, False)])
def test_a_message_that_cannot_be_built_ahead_fails_its_own_row_in_its_turn(
        store: Store, site: Settings, monkeypatch: pytest.MonkeyPatch,
        pipelining: bool, chunking: bool) -> None:
    # The lane builds each next message while the previous one's answer is
    # on the way; a build that fails there fails that row alone.
    emails = seed(store, 5)
    queue_edition(store, edition(), ["main"], T0)
    build = MessageSource.build
    built: list[str] = []

    def failing(self: MessageSource, row: ClaimedRow, date: datetime) -> bytes:
        built.append(row.email)
        if row.email == emails[2]:
            raise TemplateError("a value no message can carry")
        return build(self, row, date)

    monkeypatch.setattr(MessageSource, "build", failing)
    with EsmtpServer(pipelining=pipelining, chunking=chunking) as server:
        report = deliver(store, site, T0, config=smtp_config(server.port, connections=1),
                         clock=Clock())
    assert [m.recipients[0] for m in server.received] == [e for e in emails if e != emails[2]]
    assert (report.sent, report.failed) == (4, 1)
    assert statuses(store) == {e: "failed" if e == emails[2] else "sent" for e in emails}
    # Built once each, the failing one tried again in its turn.
    assert sorted(built) == sorted([*emails, emails[2]])
    with store.read() as conn:
        detail = conn.execute(select(outbox.c.detail).join(
            subscribers, outbox.c.subscriber_id == subscribers.c.id)
            .where(subscribers.c.email == emails[2])).scalar_one()
    assert detail.startswith("cannot build the message")


@pytest.mark.parametrize(("pipelining", "chunking", "per_thread"), [
    (True, True, 3), (True, False, 3), (False, False, 3), (True, True, 1)])
def test_one_thread_driving_several_connections_commits_each_before_its_next(
        store: Store, site: Settings, monkeypatch: pytest.MonkeyPatch,
        pipelining: bool, chunking: bool, per_thread: int) -> None:
    # Three connections taken in turn by one thread (or a thread each): on
    # every connection, each message is marked sent before the next one's
    # content arrives, and every reader gets exactly their own message.
    monkeypatch.setattr(engine, "LANES_PER_THREAD", per_thread)
    emails = seed(store, 15)
    queue_edition(store, edition(), ["main"], T0)
    late: list[tuple[int, set[str]]] = []
    senders: set[str] = set()
    server: EsmtpServer

    def on_accept(count: int) -> None:
        senders.update(t.name for t in threading.enumerate()
                       if t.name.startswith("dispatch-send"))
        with server.lock:
            arrived = server.received[count - 1]
            earlier = {m.recipients[0] for m in server.received[:count - 1]
                       if m.connection == arrived.connection}
        missing = earlier - marked_sent(store)
        if missing:
            late.append((count, missing))

    server = EsmtpServer(pipelining=pipelining, chunking=chunking, on_accept=on_accept)
    with server:
        report = deliver(store, site, T0, config=smtp_config(server.port, connections=3,
                                                             batch_size=5), clock=Clock())
    assert senders == {f"dispatch-send-{i}" for i in range(3 // per_thread)}
    assert server.connections == 3
    assert {m.connection for m in server.received} == {1, 2, 3}
    assert late == []
    assert report.sent == 15 and sorted(m.recipients[0] for m in server.received) == emails
    for message in server.received:
        assert message.recipients[0].encode() in message.content
    assert statuses(store) == dict.fromkeys(emails, "sent")


def test_a_bug_in_one_lane_stops_the_lanes_its_thread_drives_too(
        store: Store, site: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # Not a DispatchError: a bug. Its lane stops the run; the other lanes of
    # the same thread hand their rows back instead of being abandoned.
    monkeypatch.setattr(engine, "LANES_PER_THREAD", 3)
    emails = seed(store, 30)
    queue_edition(store, edition(), ["main"], T0)
    build = MessageSource.build

    def broken(self: MessageSource, row: ClaimedRow, date: datetime) -> bytes:
        if row.email == emails[7]:
            raise RuntimeError("a bug")
        return build(self, row, date)

    monkeypatch.setattr(MessageSource, "build", broken)
    with EsmtpServer(pipelining=True, chunking=True) as server:
        report = deliver(store, site, T0, config=smtp_config(server.port, connections=3,
                                                             batch_size=10), clock=Clock())
    assert report.stopped is not None and "internal error: a bug" in report.stopped
    delivered = [m.recipients[0] for m in server.received]
    assert len(delivered) == len(set(delivered)) < 30
    # The broken lane's last delivered message was not committed yet (the
    # one a crash may send again); every other delivered one is marked sent.
    assert marked_sent(store) <= set(delivered)
    assert set(delivered) - marked_sent(store) <= {emails[6]}
    # The broken lane's batch stays leased (reaped once its lease runs out);
    # its neighbours in the same thread handed back what they had not sent.
    now = statuses(store)
    assert {now[e] for e in emails[:10] if e not in delivered} == {"sending"}
    assert {now[e] for e in emails[10:]} == {"sent", "queued"}
    assert {e for e in emails[10:] if now[e] == "sent"} == set(delivered) - set(emails[:10])
    assert report.sent == len(set(delivered) - set(emails[:10]))
