"""SMTP: one reused connection per sender lane, on dispatch's own client.

:mod:`dispatch.delivery.smtp_client` speaks the protocol (PIPELINING and
CHUNKING when the server offers them: one or two round trips per message
instead of four); this module opens connections from the settings and turns
each transaction's replies into the engine's classified results. A
connection is opened lazily, reused for every message, and dropped (then
reopened on the next send) after a 421 or a broken socket.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Collection
from typing import TYPE_CHECKING

from dispatch.delivery.registry import EmailTransport
from dispatch.delivery.settings import SmtpSettings
from dispatch.delivery.smtp_client import (
    Pending,
    SmtpClient,
    SmtpError,
    SmtpReplyError,
    Transaction,
)
from dispatch.delivery.transport import (
    BOUNCE_CODES,
    Connection,
    Envelope,
    SendResult,
    TransportUnavailable,
    classify,
)
from dispatch.jobs.states import ResultClass
from dispatch.jobs.transport import Settled, Staged

if TYPE_CHECKING:
    from dispatch.config import Settings
    from dispatch.delivery.settings import DeliverySettings


class SmtpConnection:
    def __init__(self, config: SmtpSettings, bounce_codes: Collection[int]) -> None:
        self.config = config
        self.bounce_codes = bounce_codes
        self.client: SmtpClient | None = None

    def connect(self) -> None:
        c = self.config
        client = SmtpClient(c.host, c.port, timeout=c.timeout, helo=c.helo, tls=c.tls,
                            context=ssl.create_default_context() if c.tls != "none" else None)
        try:
            client.connect()
            if c.username:
                client.login(c.username, c.password or "")
        except SmtpReplyError as exc:
            client.close()
            what = "login refused" if exc.step == "AUTH" else f"{exc.step} refused"
            raise TransportUnavailable(f"{c.display}: {what} ({exc.reply})") from None
        except SmtpError as exc:
            client.close()
            raise TransportUnavailable(f"{c.display}: cannot connect ({exc})") from None
        self.client = client

    def send(self, message: Envelope) -> SendResult:
        return self.begin(message).finish()

    def begin(self, message: Envelope) -> Staged:
        """Put ``message``'s envelope on the wire (see :meth:`SmtpClient.begin`);
        its content goes with :meth:`SmtpStaged.finish`, or never (``abort``).
        Raises :class:`TransportUnavailable` if a dropped connection cannot
        be opened again."""
        if self.client is None or not self.client.connected:
            self.connect()
        assert self.client is not None
        try:
            pending = self.client.begin(message.sender, (message.recipient,), message.data)
        except SmtpError as exc:
            self.drop()
            return Settled(SendResult(ResultClass.TEMPORARY, f"connection lost: {exc}"))
        return SmtpStaged(self, pending)

    def result(self, done: Transaction) -> SendResult:
        """The class of one transaction's answers."""
        if done.delivered:
            assert done.data is not None
            return SendResult(ResultClass.DELIVERED, str(done.data))
        if not done.mail.ok:
            return self._reply(done.mail.code, done.mail.text, at_recipient=False)
        answer = done.recipients[0]
        if not answer.ok:
            return self._reply(answer.code, answer.text, at_recipient=True)
        assert done.data is not None  # the recipient was accepted, so data went out
        return self._reply(done.data.code, done.data.text, at_recipient=False)

    def lost(self, exc: SmtpError) -> SendResult:
        # Ambiguous if it broke after the data went out: the server may
        # have accepted the message, so a retry can duplicate; losing it
        # would be worse.
        self.drop()
        return SendResult(ResultClass.TEMPORARY, f"connection lost: {exc}")

    def _reply(self, code: int, text: str, *, at_recipient: bool) -> SendResult:
        if code == 421 or code < 200:
            self.drop()  # the server is closing this connection
            return SendResult(ResultClass.THROTTLED, f"{code} {text}")
        return classify(code, text, at_recipient=at_recipient, bounce_codes=self.bounce_codes)

    def drop(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.close()

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(SmtpError):
                client.quit()


class SmtpStaged:
    """One message begun on an :class:`SmtpConnection`."""

    __slots__ = ("broken", "conn", "pending")

    def __init__(self, conn: SmtpConnection, pending: Pending) -> None:
        self.conn, self.pending = conn, pending
        self.broken: SmtpError | None = None

    def release(self) -> None:
        try:
            self.pending.release()
        except SmtpError as exc:
            self.broken = exc  # answered by finish

    def finish(self) -> SendResult:
        if self.broken is not None:
            return self.conn.lost(self.broken)
        try:
            return self.conn.result(self.pending.finish())
        except SmtpError as exc:
            return self.conn.lost(exc)

    def abort(self) -> None:
        try:
            self.pending.abort()
        except SmtpError:
            self.conn.drop()


class SmtpTransport:
    def __init__(self, config: SmtpSettings, bounce_codes: Collection[int] = BOUNCE_CODES
                 ) -> None:
        self.config = config
        self.bounce_codes = tuple(bounce_codes)

    @property
    def name(self) -> str:
        return f"smtp {self.config.display}"

    def open(self) -> Connection:
        """Connect now, so an unreachable server is known before any row is touched."""
        conn = SmtpConnection(self.config, self.bounce_codes)
        conn.connect()
        return conn


def _build(settings: Settings, config: DeliverySettings) -> SmtpTransport:
    assert config.smtp is not None  # the settings refuse smtp without a URL
    return SmtpTransport(config.smtp, config.bounce_codes)


SMTP = EmailTransport("smtp", "sends over SMTP (one URL: DISPATCH_SMTP_URL or delivery.smtp_url)",
                      _build, needs_server=True)
