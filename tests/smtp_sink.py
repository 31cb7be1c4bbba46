"""A minimal, fast SMTP sink for load tests, run in its own process.

    python tests/smtp_sink.py [--delay-ms 10] [--extensions PIPELINING,CHUNKING]
                                                   → prints "READY <port>"

It accepts every message and remembers, per message, the envelope
recipients and the Message-ID header. Two extra verbs serve the test that
drives it: ``XCNT`` answers ``250 <messages accepted>`` and ``XDUMP <path>``
writes one ``recipient<TAB>message-id`` line per accepted recipient to
``path``. ``--delay-ms`` delays every reply, like a remote server's round trip.

aiosmtpd reads DATA line by line and needs about a millisecond of CPU per
message (measured with aiosmtpd 1.4); on a two-core machine that would make the sink,
not the workers under test, the bottleneck of a 20,000-message run.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import smtplib
import subprocess
import sys
from pathlib import Path

_MESSAGE_ID = re.compile(rb"(?im)^Message-ID:[ \t]*(<[^>\r\n]+>)")
_ADDRESS = re.compile(rb"<([^>]*)>")


class Received:
    def __init__(self) -> None:
        self.messages = 0
        self.rows: list[tuple[str, str]] = []

    def accept(self, data: bytes, rcpts: list[str]) -> None:
        """Count one message and remember its recipients with its Message-ID."""
        head = data[:data.find(b"\r\n\r\n")]
        found = _MESSAGE_ID.search(head)
        mid = found.group(1).decode() if found else ""
        self.messages += 1
        self.rows.extend((r, mid) for r in rcpts)

    def dump(self, path: str) -> None:
        Path(path).write_text("".join(f"{r}\t{m}\n" for r, m in self.rows), encoding="utf-8")


async def _session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   delay: float, received: Received, extensions: tuple[str, ...] = ()) -> None:
    async def reply(line: bytes) -> None:
        if delay:
            await asyncio.sleep(delay)
        writer.write(line)

    rcpts: list[str] = []
    writer.write(b"220 test-sink ESMTP\r\n")
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            verb = line[:4].upper()
            if verb == b"EHLO":
                offered = "".join(f"250-{e}\r\n" for e in extensions)
                await reply(b"250-test-sink\r\n" + offered.encode() + b"250 8BITMIME\r\n")
            elif verb == b"MAIL":
                rcpts = []
                await reply(b"250 OK\r\n")
            elif verb == b"RCPT":
                found = _ADDRESS.search(line)
                rcpts.append(found.group(1).decode() if found else "")
                await reply(b"250 OK\r\n")
            elif verb == b"DATA":
                await reply(b"354 go ahead\r\n")
                received.accept(await reader.readuntil(b"\r\n.\r\n"), rcpts)
                await reply(b"250 2.0.0 accepted\r\n")
            elif verb == b"BDAT" and "CHUNKING" in extensions:
                size, *last = line.split()[1:]
                data = await reader.readexactly(int(size))
                if last:  # one chunk per message is all the clients under test send
                    received.accept(data, rcpts)
                await reply(b"250 2.0.0 accepted\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            elif verb == b"XCNT":
                writer.write(b"250 %d\r\n" % received.messages)
            elif verb == b"XDUM":
                received.dump(line.split(None, 1)[1].strip().decode())
                writer.write(b"250 %d\r\n" % len(received.rows))
            else:  # HELO, RSET, NOOP
                await reply(b"250 OK\r\n")
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass  # a killed client: exactly what some tests do
    finally:
        writer.close()


async def _serve(delay: float, extensions: tuple[str, ...]) -> None:
    received = Received()
    server = await asyncio.start_server(
        lambda r, w: _session(r, w, delay, received, extensions), "127.0.0.1", 0,
        limit=2**22)
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    async with server:
        await server.serve_forever()


class SinkProcess:
    """Start the sink in a subprocess; ask it for counts and the recipients."""

    def __init__(self, delay_ms: float = 0.0, extensions: tuple[str, ...] = ()) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--delay-ms", str(delay_ms),
                                      "--extensions", ",".join(extensions)],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline().split()
        if len(ready) != 2 or ready[0] != "READY":
            self.proc.kill()
            raise RuntimeError("the SMTP sink did not start")
        self.port = int(ready[1])

    def _command(self, command: str) -> int:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
            code, text = client.docmd(command)
        assert code == 250, (code, text)
        return int(text)

    def count(self) -> int:
        """Messages accepted so far."""
        return self._command("XCNT")

    def received(self, path: Path) -> list[tuple[str, str]]:
        """Every accepted (recipient, Message-ID), in arrival order."""
        self._command(f"XDUMP {path}")
        lines = path.read_text(encoding="utf-8").splitlines()
        return [(r, m) for r, m in (line.split("\t") for line in lines)]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--extensions", default="",
                        help="EHLO keywords to offer: PIPELINING (which it always handles), "
                             "CHUNKING (BDAT)")
    args = parser.parse_args()
    offered = tuple(e.strip().upper() for e in args.extensions.split(",") if e.strip())
    asyncio.run(_serve(args.delay_ms / 1000, offered))


if __name__ == "__main__":
    main()
