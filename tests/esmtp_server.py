"""A small, controllable ESMTP server on 127.0.0.1 for the SMTP client tests.

aiosmtpd offers neither PIPELINING nor CHUNKING; this one offers what it is
told to, and can be made to misbehave on purpose:

- ``pipelining=True`` holds the replies to MAIL and RCPT until the command
  that ends the group (DATA or BDAT) has arrived, as RFC 2920 allows. A
  client that waited for each reply would wait for ever (its timeout), so a
  message that gets through *proves* it was pipelined;
- ``chunking=True`` accepts ``BDAT n [LAST]``;
- ``rcpt_reply(address)`` refuses chosen recipients;
- ``on_accept(count)`` runs when a message is taken, before its reply;
- ``drop_bdat(n)`` closes the connection halfway through the chunk of the
  n-th transaction (counted from 1 across connections);
- ``starttls=(certfile, keyfile)`` and ``auth=(user, password)``.

Each accepted message is recorded with the number of times the server sent
replies and then had to wait for the client during its transaction: the
round trips it cost.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO


@dataclass(frozen=True)
class Received:
    sender: str
    recipients: tuple[str, ...]
    content: bytes
    via: str  # "DATA" or "BDAT"
    round_trips: int
    connection: int = 0
    """Which connection carried it: 1 for the server's first, and so on."""


@dataclass
class EsmtpServer:
    pipelining: bool = True
    chunking: bool = False
    size: int | None = 10_000_000
    smtputf8: bool = False
    starttls: tuple[str, str] | None = None
    auth: tuple[str, str] | None = None
    rcpt_reply: Callable[[str], str | None] = lambda address: None
    data_reply: Callable[[tuple[str, ...]], str | None] = lambda rcpts: None
    drop_bdat: Callable[[int], bool] = lambda n: False
    on_accept: Callable[[int], None] | None = None
    """Called with the number of messages accepted so far, before the reply goes out."""
    received: list[Received] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    transactions: int = 0
    connections: int = 0
    open: int = 0
    """Sessions not yet ended (the client may still have bytes on their way)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> EsmtpServer:
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                _Session(owner, self.request).run()

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_idle(self, timeout: float) -> bool:
        """Until every session has ended: whatever a client sent before it
        died has been read (and, if complete, taken). False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.open == 0:
                    return True
            time.sleep(0.01)
        return False

    def __enter__(self) -> EsmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def extensions(self, tls_active: bool) -> list[str]:
        offered = ["8BITMIME"]
        if self.pipelining:
            offered.append("PIPELINING")
        if self.chunking:
            offered.append("CHUNKING")
        if self.size:
            offered.append(f"SIZE {self.size}")
        if self.smtputf8:
            offered.append("SMTPUTF8")
        if self.starttls and not tls_active:
            offered.append("STARTTLS")
        if self.auth and (tls_active or not self.starttls):
            offered.append("AUTH PLAIN LOGIN")
        return offered


class _Closed(Exception):
    pass


class _Session:
    def __init__(self, server: EsmtpServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.file: BinaryIO = sock.makefile("rb")
        self.pending: list[bytes] = []
        self.tls = False
        self.authed = False
        self.flushes = 0
        self.reset()
        with server.lock:
            server.connections += 1
            server.open += 1
            self.connection = server.connections

    def reset(self) -> None:
        self.sender: str | None = None
        self.rcpts: list[str] = []
        self.chunks: list[bytes] = []
        self.started = 0  # flushes when MAIL arrived
        self.number = 0

    def reply(self, line: str, *, hold: bool = False) -> None:
        self.pending.append(line.encode() + b"\r\n")
        if not hold:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.sock.sendall(b"".join(self.pending))
            self.pending.clear()
            self.flushes += 1

    def line(self) -> bytes:
        data = self.file.readline(65536)
        if not data:
            raise _Closed
        return data

    def run(self) -> None:
        try:
            self.reply("220 esmtp-test ready")
            while True:
                if not self.command(self.line().rstrip(b"\r\n")):
                    break
        except (_Closed, OSError):
            pass
        finally:
            with contextlib.suppress(OSError):
                self.sock.close()
            with self.server.lock:
                self.server.open -= 1

    def command(self, raw: bytes) -> bool:
        server = self.server
        text = raw.decode("utf-8", "replace")
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        with server.lock:
            server.commands.append(verb)
        hold = server.pipelining
        if verb in ("EHLO", "HELO"):
            self.reset()
            lines = ["esmtp-test", *server.extensions(self.tls)] if verb == "EHLO" else ["ok"]
            for i, value in enumerate(lines):
                self.reply(f"250{'-' if i < len(lines) - 1 else ' '}{value}", hold=True)
            self.flush()
        elif verb == "STARTTLS" and server.starttls:
            self.reply("220 go ahead")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*server.starttls)
            self.sock = context.wrap_socket(self.sock, server_side=True)
            self.file = self.sock.makefile("rb")
            self.tls = True
            self.reset()
        elif verb == "AUTH" and server.auth:
            self.authenticate(arg)
        elif verb == "MAIL":
            self.reset()
            with server.lock:
                server.transactions += 1
                self.number = server.transactions
            self.started = self.flushes
            if server.auth and not self.authed:
                self.reply("530 5.7.0 authentication required", hold=hold)
                return True
            self.sender = arg[arg.find("<") + 1:arg.find(">")]
            self.reply("250 2.1.0 sender ok", hold=hold)
        elif verb == "RCPT":
            address = arg[arg.find("<") + 1:arg.find(">")]
            if self.sender is None:
                self.reply("503 5.5.1 MAIL first", hold=hold)
                return True
            refusal = server.rcpt_reply(address)
            if refusal and refusal.startswith("421"):
                self.reply(refusal)  # closing: say it now, and hang up
                raise _Closed
            if refusal:
                self.reply(refusal, hold=hold)
            else:
                self.rcpts.append(address)
                self.reply("250 2.1.5 recipient ok", hold=hold)
        elif verb == "DATA":
            if not self.rcpts:
                self.reply("554 5.5.1 no valid recipients")
                return True
            self.reply("354 end with <CRLF>.<CRLF>")
            lines = []
            while (line := self.line()) != b".\r\n":
                lines.append(line[1:] if line.startswith(b".") else line)
            self.finish(b"".join(lines), "DATA")
        elif verb == "BDAT" and server.chunking:
            size_text, _, last = arg.partition(" ")
            size = int(size_text)
            if server.drop_bdat(self.number):
                self.file.read(size // 2)
                self.sock.shutdown(socket.SHUT_RDWR)
                raise _Closed
            chunk = self.file.read(size)
            if len(chunk) < size:
                raise _Closed
            if self.sender is None:
                self.reply("503 5.5.1 MAIL first")
            elif not self.rcpts:
                self.reply("554 5.5.1 no valid recipients")
            elif last.upper() == "LAST":
                self.chunks.append(chunk)
                self.finish(b"".join(self.chunks), "BDAT")
            else:
                self.chunks.append(chunk)
                self.reply(f"250 2.0.0 {size} octets received")
        elif verb == "RSET":
            self.reset()
            self.reply("250 2.0.0 reset")
        elif verb == "NOOP":
            self.reply("250 2.0.0 ok")
        elif verb == "QUIT":
            self.reply("221 2.0.0 bye")
            return False
        else:
            self.reply("500 5.5.2 command not recognised")
        return True

    def finish(self, content: bytes, via: str) -> None:
        rcpts = tuple(self.rcpts)
        refusal = self.server.data_reply(rcpts)
        if refusal:
            self.reply(refusal)
            self.reset()
            return
        assert self.sender is not None
        # The reply about to be sent ends one more round trip.
        trips = self.flushes + 1 - self.started
        with self.server.lock:
            self.server.received.append(Received(self.sender, rcpts, content, via, trips,
                                                 self.connection))
            count = len(self.server.received)
        if self.server.on_accept is not None:
            self.server.on_accept(count)
        self.reply("250 2.0.0 queued")
        self.reset()

    def authenticate(self, arg: str) -> None:
        assert self.server.auth is not None
        user, password = self.server.auth
        mechanism, _, initial = arg.partition(" ")
        if mechanism.upper() == "PLAIN":
            parts = base64.b64decode(initial).split(b"\0")
            given = (parts[1].decode(), parts[2].decode()) if len(parts) == 3 else None
        elif mechanism.upper() == "LOGIN":
            self.reply("334 VXNlcm5hbWU6")
            name = base64.b64decode(self.line().strip()).decode()
            self.reply("334 UGFzc3dvcmQ6")
            given = (name, base64.b64decode(self.line().strip()).decode())
        else:
            self.reply("504 5.5.4 mechanism not supported")
            return
        if given == (user, password):
            self.authed = True
            self.reply("235 2.7.0 authenticated")
        else:
            self.reply("535 5.7.8 authentication failed")
