"""Local capture, the default transport: every message becomes a ``.eml`` file
in a maildir (``.dispatch/maildir/new/``), so the whole pipeline runs with no
mail server and any mail client can open the result.

Files are written to ``tmp/`` and renamed into ``new/`` (the maildir rule),
so a reader never sees half a message; names are unique per delivery, so a
duplicate send shows up as a second file instead of hiding behind the first.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

from dispatch.delivery.registry import EmailTransport
from dispatch.delivery.transport import Connection, SendResult
from dispatch.jobs.states import ResultClass

if TYPE_CHECKING:
    from dispatch.config import Settings
    from dispatch.delivery.settings import DeliverySettings

_counter = itertools.count()


class CaptureConnection:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.host = socket.gethostname().replace("/", "_").replace(":", "_")

    def send(self, sender: str, recipient: str, message: bytes) -> SendResult:
        name = f"{time.time_ns()}.P{os.getpid()}Q{next(_counter)}.{self.host}.eml"
        tmp = self.root / "tmp" / name
        # Return-Path and Delivered-To record the envelope, as a local MDA would.
        envelope = f"Return-Path: <{sender}>\r\nDelivered-To: {recipient}\r\n".encode()
        with open(tmp, "wb") as fh:
            fh.write(envelope + message)
        os.replace(tmp, self.root / "new" / name)
        return SendResult(ResultClass.DELIVERED, f"captured in {self.root / 'new' / name}")

    def close(self) -> None:
        pass


class CaptureTransport:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def name(self) -> str:
        return f"capture {self.root}"

    def open(self) -> Connection:
        for sub in ("tmp", "new", "cur"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        return CaptureConnection(self.root)


def captured(root: Path) -> list[Path]:
    """The messages captured so far, oldest first."""
    new = root / "new"
    return sorted(new.glob("*.eml")) if new.is_dir() else []


def _build(settings: Settings, config: DeliverySettings) -> CaptureTransport:
    root = config.maildir
    return CaptureTransport(root if root.is_absolute() else settings.root / root)


CAPTURE = EmailTransport("capture", "writes every message as a .eml file into a local maildir",
                         _build)
