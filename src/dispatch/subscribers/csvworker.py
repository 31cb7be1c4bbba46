"""Reading a big CSV file in a second process while this one writes it.

A million-row import spends about as long reading and validating rows as
writing them to the staging table; with two cores the two can overlap. The
worker opens the file itself, hashes and validates it exactly as an import
in one process would (``csvfile.parse_rows``), and sends the valid rows in
batches through a pipe; the importing process writes each batch as it
arrives. The problems, the file's hash, or the exception that stopped the
reading come last. A pipe holds only a few batches, so memory stays
bounded: the worker waits while the writer is behind.

Only the reading moves: the one transaction, and so all-or-nothing, stay in
the importing process.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO

import dispatch
from dispatch.errors import InputError
from dispatch.subscribers.csvfile import (
    HashingReader,
    RowProblems,
    StagedRow,
    parse_rows,
    skip_rest,
)

_BATCH = 2000
"""Rows per message: large enough that pickling is per batch, not per row."""
_PIPE_BYTES = 1 << 20


def _read(path: str, label: str, out: IO[bytes]) -> None:
    """The worker: every valid row of ``path`` in batches, then what the
    importing process needs to finish (or the exception to raise there)."""
    problems = RowProblems(label)
    try:
        with open(path, "rb") as raw:
            hashing = HashingReader(raw)
            text = io.TextIOWrapper(io.BufferedReader(hashing, 1 << 16),
                                    encoding="utf-8-sig", newline="")
            batch: list[StagedRow] = []
            for row in parse_rows(text, label, problems):
                batch.append(row)
                if len(batch) >= _BATCH:
                    pickle.dump(("rows", batch), out, pickle.HIGHEST_PROTOCOL)
                    batch = []
            if batch:
                pickle.dump(("rows", batch), out, pickle.HIGHEST_PROTOCOL)
            skip_rest(raw)
            done = (problems.kept, problems.more, hashing.sha.hexdigest())
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


class ParsedElsewhere:
    """The valid rows of a CSV file, read and validated by a child process.

    Use as a context manager (the child is stopped on leaving it, however
    the import ended); iterate :meth:`rows` once. When it is exhausted,
    ``problems`` holds the file's problems and ``sha256`` its hash."""

    def __init__(self, path: Path, problems: RowProblems) -> None:
        self.path = path
        self.problems = problems
        self.sha256 = ""
        # A fresh interpreter running this module (not a fork: nothing of
        # this process, such as open database connections or a server's
        # threads, is copied), importing this same dispatch package.
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(Path(dispatch.__file__).parent.parent), env.get("PYTHONPATH"))
            if p)
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(path), problems.path],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env)
        assert self._process.stdout is not None
        _widen(self._process.stdout)

    def rows(self) -> Iterator[StagedRow]:
        out = self._process.stdout
        assert out is not None
        while True:
            try:
                kind, payload = pickle.load(out)
            except EOFError:
                raise InputError(f"{self.path}: the process reading the file stopped "
                                 f"(exit code {self._process.wait()})") from None
            if kind == "rows":
                yield from payload
            elif kind == "raise":
                raise payload
            else:
                kept, more, self.sha256 = payload
                self.problems.kept.extend(kept)
                self.problems.more += more
                return

    def __enter__(self) -> ParsedElsewhere:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


if __name__ == "__main__":
    _read(sys.argv[1], sys.argv[2], sys.stdout.buffer)
