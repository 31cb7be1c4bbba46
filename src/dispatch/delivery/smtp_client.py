"""dispatch's own SMTP client: PIPELINING and CHUNKING, on a blocking socket.

A message costs round trips, not CPU, once the server is more than a few
milliseconds away. Sent one command at a time (as smtplib and aiosmtplib
do), a transaction waits four times: for MAIL, RCPT, DATA and the end of the
data. This client uses what the server's EHLO offers:

=============================  =========================================  ============
server offers                  one transaction                             round trips
=============================  =========================================  ============
PIPELINING and CHUNKING        MAIL, RCPT…, ``BDAT n LAST`` + message       1
PIPELINING                     MAIL, RCPT…, DATA; then message + ``.``       2
CHUNKING                       MAIL; RCPT (each); ``BDAT n LAST`` + message 2 + recipients
neither                        MAIL; RCPT (each); DATA; message + ``.``     3 + recipients
=============================  =========================================  ============

The replies of a pipelined group are read back in order and matched to the
command that caused them (RFC 2920 section 3.1), so a refused recipient is
known by its position even when its RCPT went out together with the rest.
With BDAT the message goes out exactly as built: no dot-stuffing, no scan
for a lone dot.

It is blocking on purpose: a sender lane is one thread with one
connection, and threads share nothing but the GIL here (aiosmtplib costs
2-3x the CPU per message for the same round trips).
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import re
import socket
import ssl
import struct
import sys
from collections.abc import Generator, Sequence
from dataclasses import dataclass

from dispatch.errors import DeliveryError

MAX_LINE = 8192
"""Longest reply line accepted (RFC 5321 allows 512; servers add longer texts)."""
CRLF = b"\r\n"
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)
_RECV = 65536
"""Bytes asked of one recv: every reply a pipelined transaction is owed, at once."""
_KERNEL_TIMEOUTS = sys.platform.startswith("linux")
"""Whether the socket's timeout is left to the kernel (SO_RCVTIMEO/SO_SNDTIMEO)."""
_SEEN_MAX = 64
"""Distinct reply lines a connection keeps parsed (a server says "250 OK" again and again)."""


class SmtpError(DeliveryError):
    """A conversation that could not go on: a dropped connection, a timeout,
    a reply that is not SMTP. The connection is unusable afterwards."""


class SmtpReplyError(SmtpError):
    """A refusal outside a mail transaction (greeting, EHLO, STARTTLS, AUTH)."""

    def __init__(self, step: str, reply: Reply) -> None:
        super().__init__(f"{step} refused: {reply}")
        self.step = step
        self.reply = reply


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


@dataclass(frozen=True, slots=True)
class Transaction:
    """The server's answers to one message: MAIL, one per recipient in the
    order given, and the message's own (``None`` when no data was sent
    because nobody was accepted)."""

    mail: Reply
    recipients: tuple[Reply, ...]
    data: Reply | None

    @property
    def delivered(self) -> bool:
        return self.data is not None and self.data.ok

    def accepted(self, addresses: Sequence[str]) -> list[str]:
        """Which of ``addresses`` (as passed to :meth:`SmtpClient.send`) got the message."""
        if not self.delivered:
            return []
        return [a for a, r in zip(addresses, self.recipients, strict=True) if r.ok]


def dot_stuff(message: bytes) -> bytes:
    """RFC 5321 4.5.2 transparency: a "." opening any line is doubled.

    The same result as smtplib's ``re.sub(rb"(?m)^\\.", b"..", …)`` (``^``
    in multiline mode matches at the start and after every LF), but
    ``bytes.replace`` is a memchr scan: on a 20 KB message the regex was
    ~40% of a sender lane's CPU. Only the DATA path needs it; BDAT sends the
    message as it is.
    """
    stuffed = message.replace(b"\n.", b"\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


# A dot-atom address (RFC 5322 3.4.1): sent as "<address>" with no parsing.
_PLAIN = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


def quote_address(address: str) -> str:
    """``<address>`` for MAIL FROM / RCPT TO, exactly as smtplib's ``quoteaddr``."""
    if _PLAIN.fullmatch(address):
        return f"<{address}>"
    from email.utils import parseaddr  # the rare path: a display name, odd quoting

    name, found = parseaddr(address)
    if (name, found) == ("", ""):
        # Unparsable: sent as written, and the server decides.
        return address if address.strip().startswith("<") else f"<{address}>"
    return f"<{found}>"


class SmtpClient:
    """One SMTP connection. Not thread-safe: one lane owns it.

    ``connect`` greets, says EHLO (HELO if refused), upgrades with STARTTLS
    when ``tls="starttls"`` and logs in when given credentials; ``send`` runs
    one mail transaction with the fewest round trips the server allows.
    ``pipelining`` / ``chunking`` False ignore what the server offers (for
    comparisons and for servers that advertise more than they handle).
    """

    def __init__(self, host: str, port: int, *, timeout: float = 30.0,
                 helo: str | None = None, tls: str = "none",
                 context: ssl.SSLContext | None = None,
                 pipelining: bool = True, chunking: bool = True) -> None:
        self.host, self.port, self.timeout, self.tls = host, port, timeout, tls
        self.helo = helo or socket.getfqdn()
        self.context = context
        self.use_pipelining, self.use_chunking = pipelining, chunking
        self.extensions: dict[str, str] = {}
        self.esmtp = False
        self._sock: socket.socket | None = None
        self._buffer = b""  # read from the socket, not yet taken by a reply
        self._seen: dict[bytes, Reply] = {}  # final reply lines already parsed

    # -- what the server offers ---------------------------------------------------

    @property
    def pipelining(self) -> bool:
        return self.use_pipelining and "pipelining" in self.extensions

    @property
    def chunking(self) -> bool:
        return self.use_chunking and "chunking" in self.extensions

    def offers(self, extension: str) -> bool:
        return extension.lower() in self.extensions

    # -- the connection ------------------------------------------------------------

    def connect(self) -> Reply:
        """Open the connection and greet; returns the EHLO (or HELO) reply."""
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise SmtpError(f"cannot connect: {exc}") from None
        # Without it a small command waits for the ACK of the previous
        # segment (Nagle + delayed ACK: ~40 ms per message).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._kernel_timeout(sock)
        if self.tls == "ssl":
            sock = self._wrap(sock)
        self._attach(sock)
        greeting = self.read_reply()
        if greeting.code != 220:
            self.close()
            raise SmtpReplyError("greeting", greeting)
        hello = self.ehlo()
        if self.tls == "starttls":
            if not self.offers("starttls"):
                self.close()
                raise SmtpError("the server does not offer STARTTLS")
            reply = self.command(b"STARTTLS")
            if reply.code != 220:
                self.close()
                raise SmtpReplyError("STARTTLS", reply)
            assert self._sock is not None
            self._attach(self._wrap(self._sock))
            hello = self.ehlo()  # RFC 3207: forget what was said in the clear
        return hello

    def _wrap(self, sock: socket.socket) -> socket.socket:
        context = self.context or ssl.create_default_context()
        try:
            return context.wrap_socket(sock, server_hostname=self.host)
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise SmtpError(f"TLS handshake failed: {exc}") from None

    def _kernel_timeout(self, sock: socket.socket) -> None:
        """Leave the timeout to the kernel, on a blocking socket.

        With a Python-level timeout every send and every recv is a poll()
        first, and each of the two drops and retakes the GIL: among a
        worker's busy lanes that is a thread switch each time. The kernel's
        own SO_RCVTIMEO/SO_SNDTIMEO give the same bound with one system call
        (a recv that times out fails with EAGAIN, reported as a timeout).
        """
        if not _KERNEL_TIMEOUTS:
            return
        seconds = max(self.timeout, 0.001)
        value = struct.pack("@ll", int(seconds), int(seconds % 1 * 1_000_000))
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
        except OSError:
            return  # Python's own timeout stays in force
        sock.settimeout(None)

    def _attach(self, sock: socket.socket) -> None:
        self._sock = sock
        # Nothing read before a TLS upgrade is taken as said inside it.
        self._buffer = b""

    def ehlo(self) -> Reply:
        self.extensions = {}
        reply = self.command(b"EHLO " + self.helo.encode("ascii", "replace"))
        if reply.code != 250:
            reply = self.command(b"HELO " + self.helo.encode("ascii", "replace"))
            if reply.code != 250:
                raise SmtpReplyError("HELO", reply)
            self.esmtp = False
            return reply
        self.esmtp = True
        for line in reply.text.split("\n")[1:]:
            keyword, _, params = line.strip().partition(" ")
            if keyword:
                self.extensions[keyword.lower()] = params
        return reply

    def login(self, username: str, password: str) -> Reply:
        """AUTH with the best mechanism both sides know (CRAM-MD5, PLAIN, LOGIN)."""
        offered = self.extensions.get("auth", "").upper().split()
        if "CRAM-MD5" in offered:
            reply = self.command(b"AUTH CRAM-MD5")
            if reply.code == 334:
                challenge = base64.b64decode(reply.text)
                digest = hmac.new(password.encode(), challenge, "md5").hexdigest()
                reply = self.command(base64.b64encode(f"{username} {digest}".encode()))
        elif "PLAIN" in offered:
            token = base64.b64encode(f"\0{username}\0{password}".encode())
            reply = self.command(b"AUTH PLAIN " + token)
        elif "LOGIN" in offered:
            reply = self.command(b"AUTH LOGIN")
            if reply.code == 334:
                reply = self.command(base64.b64encode(username.encode()))
            if reply.code == 334:
                reply = self.command(base64.b64encode(password.encode()))
        else:
            raise SmtpReplyError("AUTH", Reply(504, "no AUTH mechanism in common "
                                                     f"(offered: {' '.join(offered) or 'none'})"))
        if reply.code != 235:
            raise SmtpReplyError("AUTH", reply)
        return reply

    def quit(self) -> None:
        with contextlib.suppress(SmtpError):
            self.command(b"QUIT")
        self.close()

    def close(self) -> None:
        sock, self._sock, self._buffer = self._sock, None, b""
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    @property
    def connected(self) -> bool:
        return self._sock is not None

    # -- talking -------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._sock is None:
            raise SmtpError("not connected")
        try:
            self._sock.sendall(data)
        except OSError as exc:
            self.close()
            if isinstance(exc, (BlockingIOError, ssl.SSLWantWriteError)):
                reason = "timed out"  # the kernel's SO_SNDTIMEO ran out
            else:
                reason = f"{exc or type(exc).__name__}"
            raise SmtpError(f"connection lost while sending: {reason}") from None

    def read_reply(self) -> Reply:
        """One (possibly multi-line) reply; the lines' texts joined by newlines.

        Replies are cut from a buffer of their own that one recv fills with
        whatever the server has sent (the answers to a whole pipelined group,
        usually), and a final line seen before on this connection is answered
        with the Reply parsed then (Reply is immutable).
        """
        sock = self._sock
        if sock is None:
            raise SmtpError("not connected")
        buffer = self._buffer
        texts: list[str] = []
        try:
            while True:
                end = buffer.find(b"\n", 0, MAX_LINE) + 1
                if not end:
                    if len(buffer) >= MAX_LINE:
                        raise SmtpError(f"reply line longer than {MAX_LINE} bytes: "
                                        f"{buffer[:80]!r}")
                    chunk = sock.recv(_RECV)
                    if not chunk:
                        raise SmtpError("connection closed by the server")
                    buffer += chunk
                    continue
                line, buffer = buffer[:end], buffer[end:]
                if not texts:
                    seen = self._seen.get(line)
                    if seen is not None:
                        self._buffer = buffer
                        return seen
                if len(line) < 3 or not line[:3].isdigit():
                    raise SmtpError(f"not an SMTP reply: {line[:80]!r}")
                texts.append(line[4:].rstrip(b"\r\n").decode("utf-8", "replace"))
                if line[3:4] != b"-":
                    self._buffer = buffer
                    reply = Reply(int(line[:3]), "\n".join(texts))
                    if len(texts) == 1 and len(self._seen) < _SEEN_MAX:
                        self._seen[line] = reply
                    return reply
        except SmtpError:
            self.close()
            raise
        except OSError as exc:  # a timeout is an OSError too
            self.close()
            if isinstance(exc, (BlockingIOError, ssl.SSLWantReadError)):
                reason = "timed out"  # the kernel's SO_RCVTIMEO ran out
            else:
                reason = f"{exc or type(exc).__name__}"
            raise SmtpError(f"connection lost while waiting for a reply: {reason}") from None

    def command(self, line: bytes) -> Reply:
        self.write(line + CRLF)
        return self.read_reply()

    def rset(self) -> None:
        """End a failed transaction, so the next one starts clean."""
        self.command(b"RSET")

    def end_quietly(self) -> None:
        # A refusal is the answer, whatever happens to the RSET; a
        # connection that breaks on it (or was closed) is simply reopened
        # next time.
        if self.connected:
            with contextlib.suppress(SmtpError):
                self.rset()

    # -- one message -----------------------------------------------------------------

    def mail_options(self, sender: str, recipients: Sequence[str], message: bytes) -> str:
        options = []
        if self.esmtp:
            if "size" in self.extensions:
                options.append(f" SIZE={len(message)}")
            if not message.isascii() and "8bitmime" in self.extensions:
                options.append(" BODY=8BITMIME")
            if ("smtputf8" in self.extensions
                    and not (sender.isascii() and all(r.isascii() for r in recipients))):
                options.append(" SMTPUTF8")
        return "".join(options)

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> Transaction:
        """One mail transaction; raises :class:`SmtpError` if the connection breaks.

        A refused MAIL or recipient is a reply in the result, not an
        exception. After a refusal the transaction is reset (RSET), so the
        connection is ready for the next message either way.
        """
        return self.begin(sender, recipients, message).finish()

    def begin(self, sender: str, recipients: Sequence[str], message: bytes) -> Pending:
        """Start a transaction: write now what carries no content (its envelope).

        The caller may then do other work while those commands travel (the
        round trip is the cost, not the write), and either go on
        (:meth:`Pending.finish`) or give the message up
        (:meth:`Pending.abort`): nothing of the message has gone out until
        it goes on. What is written at once depends on what the server offers:

        - neither extension, or CHUNKING alone: MAIL (the RCPTs wait for its reply);
        - PIPELINING: MAIL, every RCPT and DATA, whose replies come back together;
        - PIPELINING and CHUNKING: nothing. The whole transaction is one
          write and one round trip, and its final reply waits for the
          message's content anyway, so writing the envelope ahead of it
          would gain no time.

        Raises :class:`SmtpError` if the connection breaks while writing.
        """
        if not recipients:
            raise ValueError("a message needs at least one recipient")
        encoding = "utf-8" if "smtputf8" in self.extensions else "ascii"
        try:
            mail = (f"MAIL FROM:{quote_address(sender)}"
                    f"{self.mail_options(sender, recipients, message)}\r\n").encode(encoding)
            rcpts = [f"RCPT TO:{quote_address(r)}\r\n".encode(encoding) for r in recipients]
        except UnicodeEncodeError:
            refused = Reply(553, "5.6.7 non-ASCII address and the server does not offer "
                                 "SMTPUTF8")
            return Pending(self, None, len(recipients),
                           Transaction(refused, tuple(refused for _ in recipients), None))
        if not message.endswith(CRLF):
            message += CRLF
        if self.pipelining:
            steps = self._pipelined(mail, rcpts, message)
        else:
            steps = self._lockstep(mail, rcpts, message)
        return Pending(self, steps, len(rcpts))

    def _ack_at_once(self) -> None:
        """Acknowledge the next segments at once instead of up to 40 ms later.

        Postfix flushes its MAIL and RCPT replies before it has read the
        whole chunk, then writes the final reply as a second small segment,
        which its kernel holds (Nagle) until the first one is acknowledged;
        a client delaying that ACK stalls every BDAT transaction by the
        delayed-ACK timer (measured: 46 ms a message on loopback). Linux
        only, and only until the kernel's next own decision: hence per
        transaction.
        """
        if _QUICKACK is not None and self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)

    def _reply(self, got: list[Reply]) -> Reply:
        reply = self.read_reply()
        if reply.code == 421:
            raise _Closing(got, reply)
        got.append(reply)
        return reply

    # The two shapes of a transaction, as generators: each stops (``yield``)
    # once its envelope is written, where it is told whether to go on
    # (True) or to give the message up (False: it then ends the transaction
    # itself), and once more after the message's content is written, before
    # its final reply is read. It returns the server's answers, or None
    # when the message was given up.

    def _pipelined(self, mail: bytes, rcpts: list[bytes], message: bytes) -> _Steps:
        got: list[Reply] = []
        if self.chunking:
            # The whole transaction in one write: the server must read the
            # chunk even when it refuses it (RFC 3030 section 2), so the
            # stream stays in step whatever it says.
            if not (yield):
                return None
            self.write(b"".join((mail, *rcpts, b"BDAT %d LAST\r\n" % len(message), message)))
            self._ack_at_once()
            yield
            for _ in range(len(rcpts) + 1):
                self._reply(got)
            return Transaction(got[0], tuple(got[1:]), self._reply(got))
        self.write(b"".join((mail, *rcpts, b"DATA\r\n")))
        go_on = yield
        for _ in range(len(rcpts) + 1):
            self._reply(got)
        first, answers = got[0], tuple(got[1:])
        go = self._reply(got)
        if go.code != 354:
            if not go_on:
                self.end_quietly()
            return Transaction(first, answers, go if first.ok else None) if go_on else None
        if not first.ok or not any(r.ok for r in answers):
            # The server said "go ahead" although nobody can receive the
            # message: end the data at once, with nothing in it.
            self.write(b".\r\n")
            self._reply(got)
            if not go_on:
                self.end_quietly()
            return Transaction(first, answers, None) if go_on else None
        if not go_on:
            # Inside DATA only the end of the data ends the transaction, and
            # that would deliver an empty message: hang up instead (the
            # server drops a transaction whose data never ended).
            self.close()
            return None
        self.write(dot_stuff(message) + b".\r\n")
        yield
        return Transaction(first, answers, self._reply(got))

    def _lockstep(self, mail: bytes, rcpts: list[bytes], message: bytes) -> _Steps:
        got: list[Reply] = []
        self.write(mail)
        go_on = yield
        first = self._reply(got)
        if not go_on:
            self.end_quietly()
            return None
        if not first.ok:
            return Transaction(first, tuple(first for _ in rcpts), None)
        for rcpt in rcpts:
            self.write(rcpt)
            self._reply(got)
        answers = tuple(got[1:])
        if not any(r.ok for r in answers):
            return Transaction(first, answers, None)
        if self.chunking:
            self.write(b"BDAT %d LAST\r\n" % len(message) + message)
            yield
            return Transaction(first, answers, self._reply(got))
        self.write(b"DATA\r\n")
        go = self._reply(got)
        if go.code != 354:
            return Transaction(first, answers, go)
        self.write(dot_stuff(message) + b".\r\n")
        yield
        return Transaction(first, answers, self._reply(got))


_Steps = Generator[None, bool | None, Transaction | None]


class Pending:
    """One transaction begun by :meth:`SmtpClient.begin`: its envelope may be
    on the wire, its content is not until :meth:`release` or :meth:`finish`.

    Any call may raise :class:`SmtpError` (the connection broke; it is
    closed). Not thread-safe, like the client.
    """

    __slots__ = ("_began", "_client", "_count", "_released", "_result", "_steps")

    def __init__(self, client: SmtpClient, steps: _Steps | None, count: int,
                 result: Transaction | None = None) -> None:
        self._client, self._steps, self._count = client, steps, count
        self._result = result
        self._released = False
        self._began = steps is not None  # something was (or may be) written
        if steps is not None:
            self._step(None)  # write the envelope

    def release(self) -> None:
        """Read the envelope's replies and send the content (if anyone
        accepted it), without waiting for the final reply."""
        if not self._released:
            self._released = True
            self._step(True)

    def finish(self) -> Transaction:
        """Go on to the end: the server's answers to the message."""
        self.release()
        while self._result is None:
            self._step(None)
        result = self._result
        if not result.delivered and self._began:
            self._client.end_quietly()
        return result

    def abort(self) -> None:
        """Give the message up before any of its content went out: end the
        transaction (RSET, or closing the connection inside DATA)."""
        if self._released:
            raise RuntimeError("the message's content may already be on its way")
        self._released = True
        self._step(False)

    def _step(self, value: bool | None) -> None:
        if self._steps is None:
            if self._result is None:
                raise SmtpError("the transaction broke off earlier")
            return
        try:
            self._steps.send(value)
        except StopIteration as end:
            self._steps = None
            # An aborted transaction has no answers; a refusal stands for them.
            self._result = end.value or Transaction(
                Reply(0, "not sent"), tuple(Reply(0, "not sent") for _ in range(self._count)),
                None)
        except _Closing as closing:
            # 421: the server is shutting this connection; every answer
            # still owed is that one.
            self._steps = None
            self._client.close()
            got = [*closing.got, closing.reply]
            got += [closing.reply] * (self._count + 1 - len(got))
            self._result = Transaction(got[0], tuple(got[1:self._count + 1]), closing.reply)
        except BaseException:
            self._steps = None
            raise


class _Closing(Exception):
    """A 421 in the middle of a transaction (control flow inside SmtpClient.send)."""

    def __init__(self, got: list[Reply], reply: Reply) -> None:
        super().__init__(str(reply))
        self.got = got
        self.reply = reply
