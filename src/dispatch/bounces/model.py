"""The values that cross the bounce stages: what a report says (a
:class:`Finding`), which message it names, and what was decided."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from enum import StrEnum


class Kind(StrEnum):
    HARD = "hard"
    """The mailbox is gone: suppress at once."""
    SOFT = "soft"
    """Temporary, or about the message rather than the mailbox: counted."""
    COMPLAINT = "complaint"
    """The reader marked the message as spam: suppressed for good."""
    UNSUBSCRIBE = "unsubscribe"
    """A mail to the List-Unsubscribe mailto."""
    AUTOREPLY = "autoreply"
    """A vacation or other automatic reply: never a bounce, changes nobody."""
    IGNORED = "ignored"
    """Recognised and recorded, but nothing to do (a success DSN, a
    not-spam feedback report)."""
    REACTIVATED = "reactivated"
    """An operator undid a bounce (recorded in the same history)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One recipient's fate as a report tells it."""

    kind: Kind
    recipient: str = ""
    """The address the report names (may differ from the subscriber's when
    mail was forwarded); evidence only, the token decides who it is."""
    status_code: str | None = None
    """RFC 3463 enhanced status (``5.1.1``), or an SMTP code, or a feedback type."""
    diagnostic: str | None = None
    """The server's own words, or what in the report decided the kind."""


# RFC 3463: class.subject.detail, e.g. 5.1.1 or 4.2.2.
ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")

# Without a specific status code only these words make a failure hard: they
# say the mailbox is gone. "This is a permanent error" alone may be a spam
# refusal, and so may RFC 5321's stock "mailbox unavailable" (it also covers
# "not taken … for policy reasons"), so neither is here.
MAILBOX_GONE = re.compile(
    r"address not found|does ?n[o']t exist|no such (user|mailbox|recipient)|user unknown|"
    r"unknown (user|recipient|mailbox)|no mailbox here|"
    r"account (has been |is )?disabled|recipient not found|address couldn't be found",
    re.IGNORECASE)
# 5.x.x codes that say something about the message or the sender, not about
# the mailbox: counted like soft bounces instead of suppressing at once, so a
# blocklisting, a full mailbox or a too-large message never loses a reader.
_NOT_THE_MAILBOX = {(1, 7), (1, 8), (2, 2), (2, 3), (3, 4)}


def kind_of_status(code: str) -> Kind:
    """HARD for a permanent failure of the mailbox, else SOFT.

    4.x.x is soft; 5.x.x is hard except policy and security (5.7.x), content
    (5.6.x), the sender's own address (5.1.7, 5.1.8), a full mailbox (5.2.2)
    and a message too big (5.2.3, 5.3.4)."""
    found = ENHANCED.search(code)
    if found is None:
        return Kind.SOFT
    klass, subject, detail = (int(x) for x in found.groups())
    if klass != 5:
        return Kind.SOFT
    if subject in (6, 7) or (subject, detail) in _NOT_THE_MAILBOX:
        return Kind.SOFT
    return Kind.HARD


def clip(text: str | None, limit: int = 500) -> str | None:
    """One line of at most ``limit`` characters (reports fold long lines)."""
    if text is None:
        return None
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def header_text(message: Message, name: str) -> str:
    """A header's value with RFC 2047 encoded-words decoded (``=?utf-8?q?…?=``);
    the raw value when it cannot be decoded."""
    raw = message.get(name)
    if raw is None:
        return ""
    value = str(raw)
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        return value
