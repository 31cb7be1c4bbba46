"""SMTP over smtplib: one reused connection per worker thread.

smtplib with a thread per connection matched aiosmtplib's throughput at a
third of the CPU, and keeps the worker free of an event
loop. A connection is opened lazily, reused for every message, and dropped
(then reopened on the next send) after a 421 or a broken socket.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import socket
import ssl
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from dispatch.delivery.registry import EmailTransport
from dispatch.delivery.settings import SmtpSettings
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
    from _typeshed import ReadableBuffer

    from dispatch.config import Settings
    from dispatch.delivery.settings import DeliverySettings


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def dot_stuff(message: bytes) -> bytes:
    """RFC 5321 4.5.2 transparency: a "." opening any line is doubled.

    The same result as smtplib's ``re.sub(rb"(?m)^\\.", b"..", …)`` (``^``
    in multiline mode matches at the start and after every LF), but
    ``bytes.replace`` is a memchr scan: on a 20 KB message the regex was
    ~40% of a sender lane's CPU while holding the GIL the lanes share.
    """
    stuffed = message.replace(b"\n.", b"\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


# A dot-atom address (RFC 5322 3.4.1, no quoting, no comments, no display
# name): for these smtplib's quoteaddr() returns exactly "<address>", after
# parsing it with email.utils.parseaddr at ~15% of a lane's CPU. Anything
# else still goes through quoteaddr().
_PLAIN = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


def quote_address(address: str) -> str:
    """``<address>`` for the MAIL FROM / RCPT TO commands, as smtplib would."""
    return f"<{address}>" if _PLAIN.fullmatch(address) else smtplib.quoteaddr(address)


class _Client(smtplib.SMTP):
    """smtplib with cheaper MAIL, RCPT and DATA; everything else (EHLO, SIZE,
    replies, errors) is smtplib's own."""

    def mail(self, sender: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        if any(option.lower() == "smtputf8" for option in options):
            return super().mail(sender, options)  # it checks the server's support
        optionlist = " " + " ".join(options) if options and self.does_esmtp else ""
        self.putcmd("mail", f"FROM:{quote_address(sender)}{optionlist}")
        return self.getreply()

    def rcpt(self, recip: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        optionlist = " " + " ".join(options) if options and self.does_esmtp else ""
        self.putcmd("rcpt", f"TO:{quote_address(recip)}{optionlist}")
        return self.getreply()

    def data(self, msg: ReadableBuffer | str) -> tuple[int, bytes]:
        if not isinstance(msg, bytes):  # smtplib also fixes line ends of text
            return super().data(msg)
        self.putcmd("data")
        code, reply = self.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        body = dot_stuff(msg)
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        self.send(body + b".\r\n")
        return self.getreply()


class _SslClient(_Client, smtplib.SMTP_SSL):
    pass


class SmtpConnection:
    def __init__(self, config: SmtpSettings, bounce_codes: Collection[int]) -> None:
        self.config = config
        self.bounce_codes = bounce_codes
        self.client: smtplib.SMTP | None = None

    def connect(self) -> None:
        c = self.config
        try:
            if c.tls == "ssl":
                client: smtplib.SMTP = _SslClient(
                    c.host, c.port, local_hostname=c.helo, timeout=c.timeout,
                    context=ssl.create_default_context())
            else:
                client = _Client(c.host, c.port, local_hostname=c.helo, timeout=c.timeout)
                if c.tls == "starttls":
                    client.starttls(context=ssl.create_default_context())
            if c.username:
                client.login(c.username, c.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise TransportUnavailable(
                f"{c.display}: login refused ({exc.smtp_code} {_text(exc.smtp_error)})") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TransportUnavailable(f"{c.display}: cannot connect ({exc})") from None
        # Disable Nagle: without it a hand-rolled client stalled ~43 ms per
        # message on delayed ACKs.
        if client.sock is not None:
            client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client = client

    def send(self, message: Envelope) -> SendResult:
        if self.client is None:
            self.connect()
        assert self.client is not None
        recipient = message.recipient
        try:
            self.client.sendmail(message.sender, [recipient], message.data)
            return SendResult(ResultClass.DELIVERED, "250 accepted")
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = exc.recipients.get(recipient, (550, b"refused"))
            return self._reply(code, _text(text), at_recipient=True)
        except smtplib.SMTPResponseException as exc:  # sender refused, DATA refused, …
            return self._reply(exc.smtp_code, _text(exc.smtp_error), at_recipient=False)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            # Ambiguous if it broke after DATA: the server may have accepted
            # the message, so a retry can duplicate; losing it would be worse.
            self._drop()
            return SendResult(ResultClass.TEMPORARY, f"connection lost: {exc}")

    def _reply(self, code: int, text: str, *, at_recipient: bool) -> SendResult:
        if code == 421 or code < 200:
            self._drop()  # the server is closing this connection
            return SendResult(ResultClass.THROTTLED, f"{code} {text}")
        return classify(code, text, at_recipient=at_recipient, bounce_codes=self.bounce_codes)

    def _drop(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(OSError):
                client.close()

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()


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
