"""Bounces that are not RFC 3464 reports: Exim's "Mail delivery failed",
qmail's "failure notice", Exchange's "Undeliverable", Gmail's "Delivery
Status Notification (Failure)" text, and their many cousins.

They are told apart from people's mail by who sent them (``MAILER-DAEMON``,
``postmaster``, "Mail Delivery System/Subsystem", or an ``X-Failed-Recipients``
header), never by the words alone; and the message they are about is found
only through the VERP token (the caller's job). Their text is read for a
status code and for words saying the failure is permanent or temporary.
"""

from __future__ import annotations

import re
from email.message import Message
from email.utils import getaddresses

from dispatch.bounces.model import (
    ENHANCED,
    MAILBOX_GONE,
    Finding,
    Kind,
    clip,
    header_text,
    kind_of_status,
)

_DAEMON_LOCAL = re.compile(r"^(mailer-daemon|mailerdaemon|mail-daemon|postmaster|"
                           r"mdaemon|bounce|bounces|mailer)$", re.IGNORECASE)
_DAEMON_NAME = re.compile(r"\b(mail delivery (system|subsystem|service)|mailer[- ]daemon|"
                          r"postmaster|microsoft outlook|mail administrator)\b", re.IGNORECASE)
_SUBJECT = re.compile(
    r"undeliver|returned mail|mail delivery fail|delivery status notification|"
    r"failure notice|delivery (has )?failed|could not be delivered|couldn't be delivered|"
    r"non[- ]?delivery|delivery failure|delayed mail|warning: could not send|"
    r"message not delivered|nicht zustellbar|unzustellbar|non remis|no se puede entregar",
    re.IGNORECASE)
_TEMPORARY = re.compile(
    r"\(delay\)|\bdelayed\b|temporar(y|ily)|not (yet )?been delivered|will (continue to )?"
    r"(retry|try again|be retried)|still trying|is still being retried|try again later|"
    r"mailbox (is )?full|over quota|quota exceeded",
    re.IGNORECASE)
_PERMANENT = re.compile(
    r"permanent(ly)?( error| failure)?|address not found|does ?n[o']t exist|no such (user|"
    r"mailbox|recipient)|user unknown|unknown user|recipient (address )?rejected|"
    r"(couldn't|could not|wasn't|was not) (be )?delivered|delivery has failed|"
    r"not able to deliver|wasn't able to deliver|no mailbox here|account (has been )?disabled",
    re.IGNORECASE)
_BASIC = re.compile(r"(?<![\d.])([45][0-5]\d)(?:[ -]|$)")
_ADDRESS = re.compile(r"<?([A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})>?")


def from_mail_system(message: Message) -> bool:
    if message.get("X-Failed-Recipients"):
        return True
    for name, address in getaddresses([header_text(message, "From")]):
        local = address.rpartition("@")[0] or address
        if _DAEMON_LOCAL.match(local) or _DAEMON_NAME.search(name):
            return True
    return False


def looks_like_bounce(message: Message, text: str) -> bool:
    subject = header_text(message, "Subject")
    return from_mail_system(message) and (
        _SUBJECT.search(subject) is not None or _PERMANENT.search(text) is not None
        or _TEMPORARY.search(text) is not None or bool(message.get("X-Failed-Recipients")))


def _line_with(text: str, start: int) -> str:
    begin = text.rfind("\n", 0, start) + 1
    end = text.find("\n", start)
    return text[begin:end if end != -1 else len(text)].strip()


def parse_text_bounce(message: Message, text: str) -> Finding:
    """The finding of a non-standard bounce whose readable text is ``text``."""
    subject = header_text(message, "Subject")
    failed = str(message.get("X-Failed-Recipients", "")).split(",")[0].strip()
    recipient = failed
    if not recipient:
        found = _ADDRESS.search(text)
        recipient = found.group(1) if found else ""
    code = ENHANCED.search(text)
    if code is not None:
        kind = kind_of_status(code.group(0))
        if kind is Kind.HARD and _TEMPORARY.search(subject):
            kind = Kind.SOFT  # "(Delay)" notices quote the 5.x.x they may yet hit
        return Finding(kind, recipient, code.group(0), clip(_line_with(text, code.start())))
    basic = _BASIC.search(text)
    if _TEMPORARY.search(subject) or (basic is not None and basic.group(1)[0] == "4"):
        detail = _line_with(text, basic.start()) if basic else subject
        return Finding(Kind.SOFT, recipient, basic.group(1) if basic else None, clip(detail))
    gone = MAILBOX_GONE.search(text)
    if gone is not None and _TEMPORARY.search(text) is None:
        return Finding(Kind.HARD, recipient, basic.group(1) if basic else None,
                       clip(_line_with(text, gone.start())))
    # A mail system wrote to our return path, but its words do not say how
    # bad it is: count it as soft, which suppresses only if it repeats.
    return Finding(Kind.SOFT, recipient, basic.group(1) if basic else None,
                   clip(f"unclassified bounce: {subject}"))
