"""Email on the job engine's one transport shape, and SMTP reply classes.

An email transport is a :class:`dispatch.jobs.transport.Transport` of
:class:`Envelope`: a connection sends one message to one recipient and says
what happened as a classified :class:`SendResult` (the job engine's
:class:`~dispatch.jobs.states.TransportResult`: delivered, throttled,
temporary, permanent or bounced, with the server's text). It never raises
for a reply, only :class:`TransportUnavailable` when it cannot reach the
server at all (then nothing was sent and the rows go back to the queue
without spending an attempt). SMTP reply codes are known here and in the
SMTP transport only: :func:`classify` turns them into a class.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from dispatch.jobs import transport as jobs
from dispatch.jobs.states import ResultClass, TransportResult
from dispatch.jobs.transport import TransportUnavailable

SendResult = TransportResult
THROTTLING_CODES = (421, 451, 452, 454)
"""Temporary replies that (also) mean "slow down": 421 closing, 451/452 local
trouble or too much, 454 (Amazon SES "Throttling failure")."""
BOUNCE_CODES = (550, 551, 553)
"""Basic codes that may be a hard bounce when the reply has no enhanced code."""

# RFC 3463 enhanced status code at the start of the reply text: class.subject.detail.
_ENHANCED = re.compile(r"\s*([245])\.(\d{1,3})\.(\d{1,3})(?!\S)")
# 5.1.x is "addressing status"; of it only these are about the sender, not
# the recipient (Postfix's reject_unknown_sender_domain answers 5.1.8 at RCPT).
_SENDER_SIDE = {(1, 7), (1, 8)}
# Without an enhanced code the text must say the mailbox does not exist.
# RFC 5321's stock 550 text "mailbox unavailable" is deliberately absent: it
# covers policy refusals ("not taken … for policy reasons") as well.
_NO_MAILBOX = re.compile(
    r"\b(?:no\s+such|unknown|invalid|non-?existent|disabled|deactivated)\s+"
    r"(?:user|mailbox|recipient|address|account)"
    r"|\b(?:user|mailbox|recipient|address|account)\b[^.;]{0,40}?"
    r"\b(?:unknown|does\s*n[o']t\s+exist|not\s+exist|not\s+found|is\s+disabled)",
    re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Envelope:
    """One email to one recipient, as a transport carries it."""

    sender: str
    """The envelope sender (MAIL FROM; the Return-Path a reader sees)."""
    recipient: str
    data: bytes
    """The whole message, headers and body, CRLF line ends."""


Connection = jobs.Connection[Envelope]
Transport = jobs.Transport[Envelope]

__all__ = ["Connection", "Envelope", "SendResult", "Transport", "TransportUnavailable",
           "classify", "enhanced_code", "is_hard_bounce"]


def enhanced_code(text: str) -> tuple[int, int, int] | None:
    """The RFC 3463 status code a reply text starts with, e.g. (5, 1, 1)."""
    found = _ENHANCED.match(text)
    if found is None:
        return None
    klass, subject, detail = (int(part) for part in found.groups())
    return klass, subject, detail


def is_hard_bounce(code: int, text: str, *,
                   bounce_codes: Collection[int] = BOUNCE_CODES) -> bool:
    """Whether a 5xx refusal of a recipient says the *mailbox* is gone.

    Only then is the subscriber marked bounced. A relay refusal or a
    blocklist (``550 5.7.1 Unable to relay``, ``554 5.7.1 … blocked``) uses the
    same basic codes but is about the sender or the connection: bouncing
    on it would wrongly suppress real readers, all at once.
    """
    if not 500 <= code < 600:
        return False
    enhanced = enhanced_code(text)
    if enhanced is not None:
        klass, subject, detail = enhanced
        if klass != 5:
            return False
        # 5.1.x bad destination mailbox/system/syntax (5.1.1, 5.1.2, 5.1.10 null
        # MX, …); 5.2.1 mailbox disabled. 5.2.2 (full) and 5.7.x (policy) are not.
        return ((subject == 1 and (subject, detail) not in _SENDER_SIDE)
                or (subject, detail) == (2, 1))
    return code in bounce_codes and _NO_MAILBOX.search(text) is not None


def classify(code: int, text: str, *, at_recipient: bool,
             bounce_codes: Collection[int] = BOUNCE_CODES) -> SendResult:
    """Classify an SMTP reply for the job engine.

    4xx is temporary and never a failure; 421/451/452/454 are throttling
    (the engine also slows its pace). A 5xx is permanent; it is a hard
    bounce that suppresses the address only when given to the recipient
    itself *and* it is about the mailbox (see
    :func:`is_hard_bounce`); after DATA it is about the message, not the person.
    """
    detail = f"{code} {text}".strip()
    if 200 <= code < 300:
        return SendResult(ResultClass.DELIVERED, detail)
    if code in THROTTLING_CODES:
        return SendResult(ResultClass.THROTTLED, detail)
    if 400 <= code < 500:
        return SendResult(ResultClass.TEMPORARY, detail)
    if at_recipient and is_hard_bounce(code, text, bounce_codes=bounce_codes):
        return SendResult(ResultClass.BOUNCED, detail)
    return SendResult(ResultClass.PERMANENT, detail)
