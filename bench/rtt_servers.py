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
import socket
import sys
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
    sink = sub.add_parser("sink")
    sink.add_argument("--chunking", action="store_true")
    sink.add_argument("--no-pipelining", action="store_true")
    args = parser.parse_args()
    if args.what == "proxy":
        asyncio.run(_proxy(args.delay_ms / 1000, args.upstream, args.quickack))
    else:
        _sink(args.chunking, not args.no_pipelining)


if __name__ == "__main__":
    main()
