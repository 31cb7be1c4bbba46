"""Helpers for the subscriber, outbox and delivery tests: a real SMTP server
on 127.0.0.1 with injectable faults, a controllable clock, small editions."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from dispatch.config import Settings, load_settings
from dispatch.delivery.settings import DeliverySettings, SmtpSettings
from dispatch.outbox.policy import RetryPolicy
from dispatch.render import Edition
from dispatch.render.edition import PLACEHOLDERS
from dispatch.store.engine import Store
from dispatch.subscribers.csvfile import ImportRow, import_rows

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def edition(edition_id: str = "e1", subject: str = "Hello") -> Edition:
    """A real Edition, as the render stage stores it, without paying for premailer."""
    p = PLACEHOLDERS
    html = (f"<html><body><p>Dear {p['name']},</p><p>News.</p>"
            f"<a href=\"{p['webview_url']}\">web</a> <a href=\"{p['unsubscribe_url']}\">"
            "unsubscribe</a></body></html>")
    text = f"Dear {p['name']},\nNews.\nUnsubscribe: {p['unsubscribe_url']}\n"
    return Edition(edition_id=edition_id, kind="article", subject=subject, html=html, text=text,
                   list_id="Test <test.journal.test>")


def seed(store: Store, n: int, list_name: str = "main", *, prefix: str = "u",
         now: datetime = T0) -> list[str]:
    emails = [f"{prefix}{i:05d}@example.com" for i in range(n)]
    import_rows(store, [ImportRow(i + 2, e, f"Reader {i}", "active", ())
                        for i, e in enumerate(emails)], list_name, now)
    return emails


class Clock:
    """Simulated time: tests move it; nothing sleeps."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start
        self.lock = threading.Lock()

    def __call__(self) -> datetime:
        with self.lock:
            return self.now

    def advance(self, **kwargs: float) -> datetime:
        with self.lock:
            self.now += timedelta(**kwargs)
            return self.now


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Sink:
    """aiosmtpd handler: records every accepted message, replies as told."""

    rcpt_reply: Callable[[str], str | None] = lambda address: None
    data_reply: Callable[[list[str]], str | None] = lambda rcpts: None
    on_accept: Callable[[str, int], None] | None = None
    accepted: list[tuple[str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: Any) -> str:
        reply = self.rcpt_reply(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = self.data_reply(list(envelope.rcpt_tos))
        if reply:
            return reply
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.accepted.append((rcpt, envelope.content))
            count = len(self.accepted)
        if self.on_accept is not None:
            self.on_accept(envelope.rcpt_tos[0], count)
        return "250 Message accepted"

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(rcpt for rcpt, _ in self.accepted)


def start_sink(sink: Sink, port: int | None = None) -> Controller:
    ctl = Controller(sink, hostname="127.0.0.1", port=port or free_port(), ready_timeout=10)
    ctl.start()
    return ctl


def smtp_config(port: int, *, connections: int = 2, batch_size: int = 20,
                policy: RetryPolicy | None = None, **kwargs: Any) -> DeliverySettings:
    return DeliverySettings(
        transport="smtp", smtp=SmtpSettings("127.0.0.1", port, tls="none", timeout=10),
        connections=connections, batch_size=batch_size,
        policy=policy or RetryPolicy(base_seconds=30, max_seconds=600), **kwargs)


def site_settings(root: Path) -> Settings:
    return load_settings(root)


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts connections and never answers
    (not even the SMTP greeting): a hung or firewalled-by-drop mail server.
    Counts the connection attempts it saw."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.05)  # so the accept loop sees stop() promptly
        self.port = int(self.sock.getsockname()[1])
        self.held: list[socket.socket] = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.done.is_set():
            try:
                client, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.held.append(client)

    @property
    def connections(self) -> int:
        with self.lock:
            return len(self.held)

    def stop(self) -> None:
        self.done.set()
        self.thread.join()
        self.sock.close()
        with self.lock:
            for client in self.held:
                client.close()
