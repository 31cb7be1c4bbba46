"""Reading a big CSV file in a second process while this one writes it.

A million-row import spends about as long reading and validating rows as
writing them to the staging table; with two cores the two can overlap. The
worker opens the file itself, hashes and validates it exactly as an import
in one process would (``csvfile.parse_rows``), and sends the valid rows in
batches through a pipe; the importing process writes each batch as it
arrives. The problems, the file's hash, or the exception that stopped the
reading come last. A pipe holds only a few batches, so memory stays
bounded: the worker waits while the writer is behind.

A file of at least ``SPLIT_BYTES`` with a header and no quote character
before its middle is read by two such processes, one half each (on a busy
machine the reading was the slower side): there every line break is the end
of a row, so the second half starts at a line and its line numbers are
counted exactly. The importing process takes their batches in turn.

Only the reading moves: the one transaction, and so all-or-nothing, stay in
the importing process.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import dispatch
from dispatch.errors import InputError
from dispatch.subscribers.csvfile import (
    MAX_PROBLEMS,
    HashingReader,
    RowProblems,
    StagedRow,
    parse_rows,
    starts_with_header,
)

_BATCH = 2000
"""Rows per message: large enough that pickling is per batch, not per row."""
_PIPE_BYTES = 1 << 20
SPLIT_BYTES = 16 << 20
"""From this size on (about 250k rows) a file is read by two processes."""
_BLOCK = 1 << 20


class _Upto(io.RawIOBase):
    """The first ``size`` bytes of a stream."""

    def __init__(self, raw: io.RawIOBase, size: int) -> None:
        self.raw = raw
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(min(len(buffer), self.left)) or b""
        self.left -= len(data)
        buffer[:len(data)] = data
        return len(data)


class _HeaderThen:
    """A text stream: the file's header line, then the file from an offset."""

    def __init__(self, header: str, rest: IO[str]) -> None:
        self.header = header
        self.rest = rest

    def readline(self) -> str:
        return self.header

    def __iter__(self) -> Iterator[str]:
        return iter(self.rest)


def _half_way(path: Path) -> tuple[int, int] | None:
    """Where a second reader can start: (byte offset, line number there),
    or None when the file is small, has no header, or a quote or a lone
    carriage return (after which a line break may not end a row, or a row
    may end without one) comes before its middle."""
    size = path.stat().st_size
    if size < SPLIT_BYTES:
        return None
    with path.open("rb") as f:
        head = f.readline()
        if b'"' in head or b"\r" in head.rstrip(b"\r\n"):
            return None
        try:
            if not starts_with_header(head.decode("utf-8-sig")):
                return None
        except (UnicodeDecodeError, csv.Error):
            return None
        f.seek(0)
        middle = size // 2
        lines = at = 0
        while at < middle:
            # Blocks end at a line break, so no CR LF pair is cut in two.
            block = f.read(min(_BLOCK, middle - at))
            if not block.endswith(b"\n"):
                block += f.readline()
            if b'"' in block or block.count(b"\r") != block.count(b"\r\n"):
                return None
            lines += block.count(b"\n")
            at += len(block)
    return (at, lines + 1) if 0 < at < size else None


def _read(path: str, label: str, start: int, stop: int, line: int, out: IO[bytes]) -> None:
    """The worker: every valid row of ``path`` from byte ``start`` (line
    ``line``) to ``stop`` (-1: the end) in batches, then what the importing
    process needs to finish (or the exception to raise there). The reader
    of the first part hashes the whole file."""
    problems = RowProblems(label)
    try:
        with open(path, "rb") as raw:
            hashing = HashingReader(raw)
            stream: Any
            if start:
                header = raw.readline().decode("utf-8-sig")
                raw.seek(start)
                stream = _HeaderThen(header, io.TextIOWrapper(
                    io.BufferedReader(raw, 1 << 16), encoding="utf-8", newline=""))
            else:
                part = hashing if stop < 0 else _Upto(hashing, stop)
                stream = io.TextIOWrapper(io.BufferedReader(part, 1 << 16),
                                          encoding="utf-8-sig", newline="")
            batch: list[StagedRow] = []
            # The header is line 1 of the stream; its next line is ``line``.
            for row in parse_rows(stream, label, problems, line_shift=max(line - 2, 0)):
                batch.append(row)
                if len(batch) >= _BATCH:
                    pickle.dump(("rows", batch), out, pickle.HIGHEST_PROTOCOL)
                    batch = []
            if batch:
                pickle.dump(("rows", batch), out, pickle.HIGHEST_PROTOCOL)
            sha = ""
            if not start:
                while hashing.read(_BLOCK):  # the rest, hashed
                    pass
                sha = hashing.sha.hexdigest()
            done = (problems.kept, problems.more, sha)
            pickle.dump(("done", done), out, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # every failure is raised again by the importer
        pickle.dump(("raise", exc), out, pickle.HIGHEST_PROTOCOL)
    out.flush()


def _widen(pipe: IO[bytes]) -> None:
    """Let the pipe hold a few batches (64 KB is a third of one): the worker
    runs ahead instead of waiting for the importer at every 64 KB, which on
    a busy machine costs a wait for a free core each time."""
    # Not Linux, or above the system's limit: the default pipe works too.
    with contextlib.suppress(AttributeError, OSError):
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)


class _Reader:
    """One child process reading a part of the file."""

    def __init__(self, path: Path, label: str, start: int, stop: int, line: int) -> None:
        self.path = path
        # A fresh interpreter running this module (not a fork: nothing of
        # this process, such as open database connections or a server's
        # threads, is copied), importing this same dispatch package.
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(Path(dispatch.__file__).parent.parent), env.get("PYTHONPATH"))
            if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(path), label, str(start), str(stop),
             str(line)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env)
        assert self.process.stdout is not None
        _widen(self.process.stdout)

    def messages(self) -> Iterator[tuple[str, Any]]:
        out = self.process.stdout
        assert out is not None
        while True:
            try:
                kind, payload = pickle.load(out)
            except EOFError:
                raise InputError(f"{self.path}: the process reading the file stopped "
                                 f"(exit code {self.process.wait()})") from None
            yield kind, payload
            if kind != "rows":
                return

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


class ParsedElsewhere:
    """The valid rows of a CSV file, read and validated by child processes.

    Use as a context manager (the children are stopped on leaving it,
    however the import ended); iterate :meth:`rows` once. When it is
    exhausted, ``problems`` holds the file's problems and ``sha256`` its hash."""

    def __init__(self, path: Path, problems: RowProblems) -> None:
        self.path = path
        self.problems = problems
        self.sha256 = ""
        split = _half_way(path)
        if split is None:
            self._readers = [_Reader(path, problems.path, 0, -1, 1)]
        else:
            offset, line = split
            self._readers = [_Reader(path, problems.path, 0, offset, 1),
                             _Reader(path, problems.path, offset, -1, line)]

    def rows(self) -> Iterator[StagedRow]:
        """The rows of every part, a batch of each in turn; then the problems
        in file order. A failure in the first part is the one raised."""
        streams = [reader.messages() for reader in self._readers]
        ends: list[tuple[str, Any]] = [("", None)] * len(streams)
        active = list(range(len(streams)))
        while active:
            for i in list(active):
                kind, payload = next(streams[i])
                if kind == "rows":
                    yield from payload
                    continue
                active.remove(i)
                ends[i] = (kind, payload)
                if kind == "raise" and i == 0:
                    raise payload
        for kind, payload in ends:
            if kind == "raise":
                raise payload
        for _kind, (kept, more, sha) in ends:
            room = max(MAX_PROBLEMS - len(self.problems.kept), 0)
            self.problems.kept.extend(kept[:room])
            self.problems.more += more + len(kept[room:])
            self.sha256 = self.sha256 or sha

    def __enter__(self) -> ParsedElsewhere:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for reader in self._readers:
            reader.stop()


if __name__ == "__main__":
    _read(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]),
          sys.stdout.buffer)
