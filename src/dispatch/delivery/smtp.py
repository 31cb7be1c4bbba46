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
from dispatch.delivery.smtp_client import SmtpClient, SmtpError, SmtpReplyError
from dispatch.delivery.transport import (
    BOUNCE_CODES,
    Connection,
    Envelope,
    SendResult,
    TransportUnavailable,
    classify,
)
from dispatch.jobs.states import ResultClass

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
        if self.client is None or not self.client.connected:
            self.connect()
        assert self.client is not None
        recipient = message.recipient
        try:
            done = self.client.send(message.sender, (recipient,), message.data)
        except SmtpError as exc:
            # Ambiguous if it broke after the data went out: the server may
            # have accepted the message, so a retry can duplicate; losing it
            # would be worse.
            self._drop()
            return SendResult(ResultClass.TEMPORARY, f"connection lost: {exc}")
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

    def _reply(self, code: int, text: str, *, at_recipient: bool) -> SendResult:
        if code == 421 or code < 200:
            self._drop()  # the server is closing this connection
            return SendResult(ResultClass.THROTTLED, f"{code} {text}")
        return classify(code, text, at_recipient=at_recipient, bounce_codes=self.bounce_codes)

    def _drop(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.close()

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(SmtpError):
                client.quit()


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
