"""Local capture, the one way every channel "sends" without a server.

A :class:`CaptureTransport` is a :class:`~dispatch.jobs.transport.Transport`
that writes each message as a file under a folder instead: emails as
``.eml`` files in a maildir, social posts as JSON documents. What a file is
called and holds is the channel's (a ``render`` function); how it is written
is this module's, the same for every channel: written in full to a
temporary file, then renamed into place, so a reader sees the old file or
the new one and never half a message.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from dispatch.jobs.states import ResultClass, TransportResult

M_contra = TypeVar("M_contra", contravariant=True)
_counter = itertools.count()


@dataclass(frozen=True, slots=True)
class Captured:
    """A message as a file: where it goes under the capture folder, and its bytes."""

    path: str
    """Relative to the capture folder (``new/….eml``, ``mastodon/slug.json``)."""
    data: bytes


def write_atomically(target: Path, data: bytes, tmp_dir: Path | None = None) -> None:
    """``target`` holds ``data`` in full or keeps what it held before.

    The temporary file lives in ``tmp_dir`` (a maildir's ``tmp/``) or beside
    the target, on the same file system, so the rename is atomic. Its name
    is unique to this process and call (no random names to draw: this runs
    once per captured message).
    """
    tmp = (tmp_dir or target.parent) / f".tmp-{os.getpid()}-{next(_counter)}-{target.name}"
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class CaptureConnection(Generic[M_contra]):
    def __init__(self, transport: CaptureTransport[M_contra]) -> None:
        self.transport = transport
        self.made: set[Path] = {transport.root / sub for sub in transport.folders}
        """Folders known to exist (one mkdir per folder, not per message)."""

    def send(self, message: M_contra) -> TransportResult:
        t = self.transport
        made = t.render(message)
        target = t.root / made.path
        if target.parent not in self.made:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.made.add(target.parent)
        write_atomically(target, made.data, t.tmp_dir)
        return TransportResult(ResultClass.DELIVERED, f"captured in {target}",
                               remote_id=made.path)

    def close(self) -> None:
        pass


class CaptureTransport(Generic[M_contra]):
    """Every message becomes a file under ``root``; see the module doc."""

    def __init__(self, root: Path, render: Callable[[M_contra], Captured], *,
                 tmp: str | None = None, folders: tuple[str, ...] = ()) -> None:
        self.root = root
        self.render = render
        self.tmp_dir = root / tmp if tmp else None
        self.folders = folders

    @property
    def name(self) -> str:
        return f"capture {self.root}"

    def open(self) -> CaptureConnection[M_contra]:
        for sub in self.folders:
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        return CaptureConnection(self)
