"""The servers behind bench/smtp_rtt.py, each run as its own process.

    python bench/rtt_servers.py proxy --delay-ms 5 --upstream PORT   → "READY <port>"
    python bench/rtt_servers.py sink [--chunking] [--no-pipelining]  → "READY <port>"

``proxy`` is a TCP proxy on 127.0.0.1 that holds every chunk of bytes for
``--delay-ms`` in each direction (so 5 ms makes a 10 ms round trip) and
keeps their order. ``sink`` is an aiosmtpd server that accepts everything;
it advertises PIPELINING (which aiosmtpd handles, reading one command line
at a time, but does not announce) unless told not to, and with
``--chunking`` also CHUNKING, with a BDAT command added here (aiosmtpd has
none).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import selectors
import socket
import sys
import time
from typing import Any

_QUICKACK = getattr(socket, "TCP_QUICKACK", 12)

# --- the delaying proxy -----------------------------------------------------------

class _Pipe:
    """One direction: bytes leave ``delay`` seconds after they arrived, in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        self.loop, self.delay = loop, delay
        self.out: asyncio.Transport | None = None
        self.queue: collections.deque[tuple[float, bytes | None]] = collections.deque()
        self.timer: asyncio.TimerHandle | None = None

    def push(self, data: bytes | None) -> None:  # None: close after what is queued
        self.queue.append((self.loop.time() + self.delay, data))
        if self.timer is None:
            self.timer = self.loop.call_at(self.queue[0][0], self.flush)

    def flush(self) -> None:
        self.timer = None
        now = self.loop.time()
        if self.out is None:  # the other side is still connecting
            self.timer = self.loop.call_later(0.001, self.flush)
            return
        while self.queue and self.queue[0][0] <= now:
            _, data = self.queue.popleft()
            if data is None:
                self.out.close()
            else:
                self.out.write(data)
        if self.queue:
            self.timer = self.loop.call_at(self.queue[0][0], self.flush)


class _Side(asyncio.Protocol):
    def __init__(self, pipe: _Pipe, back: _Pipe, *, quickack: bool = False) -> None:
        self.pipe, self.back = pipe, back  # pipe: where my bytes go; back: bytes to me
        self.quickack = quickack
        self.sock: socket.socket | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.back.out = transport
        self.sock = transport.get_extra_info("socket")

    def data_received(self, data: bytes) -> None:
        if self.quickack and self.sock is not None:
            # The proxy is the server's TCP peer: it must acknowledge like the
            # client it stands for would, or its delayed ACKs (up to 40 ms)
            # hold back a server's second small reply (Nagle). dispatch's
            # client asks for prompt ACKs (TCP_QUICKACK) on its own socket.
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        self.pipe.push(data)

    def eof_received(self) -> bool | None:
        self.pipe.push(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.pipe.push(None)


async def _proxy(delay: float, upstream: int, quickack: bool) -> None:
    loop = asyncio.get_running_loop()
    dialling: set[asyncio.Task[None]] = set()

    def factory() -> asyncio.Protocol:
        up, down = _Pipe(loop, delay), _Pipe(loop, delay)
        client = _Side(up, down)

        async def dial() -> None:
            await loop.create_connection(lambda: _Side(down, up, quickack=quickack),
                                         "127.0.0.1", upstream)

        task = loop.create_task(dial())
        dialling.add(task)  # a task needs a reference until it is done
        task.add_done_callback(dialling.discard)
        return client

    server = await loop.create_server(factory, "127.0.0.1", 0)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


class _Conn:
    """One socket of a proxied pair: its peer, and what is still to be written to it."""

    __slots__ = ("closing", "peer", "pending", "quickack", "reading", "sock")

    def __init__(self, sock: socket.socket, *, quickack: bool) -> None:
        sock.setblocking(False)
        # Each chunk leaves as soon as it is due, as with asyncio's transports
        # (which set TCP_NODELAY).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.peer: _Conn | None = None
        self.pending = bytearray()  # due bytes the kernel would not take yet
        self.reading = True  # until its end of file
        self.closing = False  # close once ``pending`` is written
        self.quickack = quickack


def _lean_proxy(delay: float, upstream: int, quickack: bool) -> None:
    """The proxy of ``_proxy`` on a bare selector loop, without asyncio.

    Every direction has the same delay, so the order in which chunks arrive
    (on any connection) is the order in which they fall due: one FIFO serves
    all directions, and each pass of the loop writes everything due, oldest
    first. A chunk costs a recv, a send and a tuple; no protocol callbacks,
    transports or timer handles, which leaves more of a small machine to the
    server and to the clients being measured.
    """
    sel = selectors.DefaultSelector()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ, None)
    due: collections.deque[tuple[float, _Conn, bytes | None]] = collections.deque()
    print(f"READY {listener.getsockname()[1]}", flush=True)

    def watch(conn: _Conn) -> None:
        events = (selectors.EVENT_READ if conn.reading else 0) | (
            selectors.EVENT_WRITE if conn.pending else 0)
        registered = conn.sock in sel.get_map()
        if events and registered:
            sel.modify(conn.sock, events, conn)
        elif events:
            sel.register(conn.sock, events, conn)
        elif registered:
            sel.unregister(conn.sock)

    def close(conn: _Conn) -> None:
        if conn.sock.fileno() < 0:
            return
        if conn.sock in sel.get_map():
            sel.unregister(conn.sock)
        conn.sock.close()
        if conn.peer is not None:  # its peer hears of it a delay later
            due.append((time.monotonic() + delay, conn.peer, None))

    def send(conn: _Conn, data: bytes | bytearray) -> int:
        try:
            return conn.sock.send(data)
        except (BlockingIOError, InterruptedError):
            return 0

    def write(conn: _Conn, data: bytes | None) -> None:
        if conn.sock.fileno() < 0:
            return
        if data is None:
            conn.closing = True
        elif conn.pending:
            conn.pending += data
        else:
            conn.pending += data[send(conn, data):]
        if conn.closing and not conn.pending:
            close(conn)
        else:
            watch(conn)

    while True:
        timeout = max(0.0, due[0][0] - time.monotonic()) if due else None
        for key, events in sel.select(timeout):
            conn = key.data
            if conn is None:  # a new client: dial the server for it
                try:
                    sock, _ = listener.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                try:
                    dialled = socket.create_connection(("127.0.0.1", upstream))
                except OSError:  # no server: the client sees its connection closed
                    sock.close()
                    continue
                client = _Conn(sock, quickack=False)
                server = _Conn(dialled, quickack=quickack)
                client.peer, server.peer = server, client
                watch(client)
                watch(server)
                continue
            try:
                if events & selectors.EVENT_WRITE:
                    del conn.pending[:send(conn, conn.pending)]
                    if conn.closing and not conn.pending:
                        close(conn)
                        continue
                if events & selectors.EVENT_READ:
                    try:
                        # 64 KiB: a larger buffer is an mmap, mremap and
                        # munmap per read (glibc's threshold is 128 KiB).
                        data = conn.sock.recv(1 << 16) or None
                    except (BlockingIOError, InterruptedError):
                        continue
                    if data is None:
                        conn.reading = False  # the peer gets the end of file in turn
                    elif conn.quickack:
                        # See _Side.data_received: ACK the server's bytes at once.
                        conn.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
                    assert conn.peer is not None
                    due.append((time.monotonic() + delay, conn.peer, data))
                watch(conn)
            except OSError:  # reset: both ends go, the peer a delay later
                close(conn)
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, target, chunk = due.popleft()
            try:
                write(target, chunk)
            except OSError:
                close(target)


# --- the aiosmtpd sink ----------------------------------------------------------------

def _sink(chunking: bool, pipelining: bool) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP, Envelope

    class Handler:
        async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                              responses: list[str]) -> list[str]:
            session.host_name = hostname  # aiosmtpd leaves this to a handler's EHLO hook
            extra = (["250-PIPELINING"] if pipelining else []) + (
                ["250-CHUNKING"] if chunking else [])
            return [responses[0], *extra, *responses[1:]]

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 2.0.0 accepted"

    class ChunkingSMTP(SMTP):
        async def smtp_BDAT(self, arg: str) -> None:
            size_text, _, last = arg.partition(" ")
            data = await self._reader.readexactly(int(size_text))
            envelope: Envelope = self.envelope
            if not envelope.rcpt_tos:
                await self.push("503 5.5.1 need RCPT first")
                return
            chunks = envelope.__dict__.setdefault("chunks", [])
            chunks.append(data)
            if last.upper() != "LAST":
                await self.push(f"250 2.0.0 {len(data)} octets")
                return
            envelope.content = envelope.original_content = b"".join(chunks)
            status = await self._call_handler_hook("DATA")
            self._set_post_data_state()
            await self.push(status)

    class Sink(Controller):
        def factory(self) -> SMTP:
            return ChunkingSMTP(self.handler, hostname="bench-sink", decode_data=False)

    ctl = Sink(Handler(), hostname="127.0.0.1", port=0, ready_timeout=10)
    ctl.port = _free_port()
    ctl.start()
    print(f"READY {ctl.port}", flush=True)
    try:
        sys.stdin.read()  # until the benchmark closes our stdin or ends us
    finally:
        ctl.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    proxy = sub.add_parser("proxy")
    proxy.add_argument("--delay-ms", type=float, default=5.0)
    proxy.add_argument("--upstream", type=int, required=True)
    proxy.add_argument("--quickack", action="store_true",
                       help="acknowledge the server's bytes at once (as dispatch's client does)")
    proxy.add_argument("--asyncio", action="store_true",
                       help="the earlier proxy: asyncio protocols, a timer per direction")
    sink = sub.add_parser("sink")
    sink.add_argument("--chunking", action="store_true")
    sink.add_argument("--no-pipelining", action="store_true")
    args = parser.parse_args()
    if args.what == "proxy":
        if args.asyncio:
            asyncio.run(_proxy(args.delay_ms / 1000, args.upstream, args.quickack))
        else:
            _lean_proxy(args.delay_ms / 1000, args.upstream, args.quickack)
    else:
        _sink(args.chunking, not args.no_pipelining)


if __name__ == "__main__":
    main()
