"""Local capture, the default transport: every message becomes a ``.eml`` file
in a maildir (``.dispatch/maildir/new/``), so the whole pipeline runs with no
mail server and any mail client can open the result.

It is the job engine's one capture mechanism
(:class:`dispatch.jobs.capture.CaptureTransport`) with email's file: written
in ``tmp/`` and renamed into ``new/`` (the maildir rule), so a reader never
sees half a message; names are unique per delivery, so a duplicate send
shows up as a second file instead of hiding behind the first.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

from dispatch.delivery.registry import EmailTransport
from dispatch.delivery.transport import Envelope
from dispatch.jobs import capture

if TYPE_CHECKING:
    from dispatch.config import Settings
    from dispatch.delivery.settings import DeliverySettings

_counter = itertools.count()
_HOST = socket.gethostname().replace("/", "_").replace(":", "_")


def as_maildir_file(message: Envelope) -> capture.Captured:
    """``new/<unique>.eml``; Return-Path and Delivered-To record the envelope,
    as a local delivery agent would."""
    name = f"new/{time.time_ns()}.P{os.getpid()}Q{next(_counter)}.{_HOST}.eml"
    envelope = f"Return-Path: <{message.sender}>\r\nDelivered-To: {message.recipient}\r\n"
    return capture.Captured(name, envelope.encode() + message.data)


class CaptureTransport(capture.CaptureTransport[Envelope]):
    def __init__(self, root: Path) -> None:
        super().__init__(root, as_maildir_file, tmp="tmp", folders=("tmp", "new", "cur"))


def captured(root: Path) -> list[Path]:
    """The messages captured so far, oldest first."""
    new = root / "new"
    return sorted(new.glob("*.eml")) if new.is_dir() else []


def _build(settings: Settings, config: DeliverySettings) -> CaptureTransport:
    root = config.maildir
    return CaptureTransport(root if root.is_absolute() else settings.root / root)


CAPTURE = EmailTransport("capture", "writes every message as a .eml file into a local maildir",
                         _build)
