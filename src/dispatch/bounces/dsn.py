"""RFC 3464 delivery status notifications (``multipart/report;
report-type=delivery-status``).

The ``message/delivery-status`` part is a block of per-message fields
followed by one block per recipient (``Final-Recipient``, ``Action``,
``Status``, ``Diagnostic-Code``). ``Action: failed`` with a 5.x.x status is
a hard bounce (see :func:`~dispatch.bounces.model.kind_of_status` for the
5.x.x codes that are about the message, not the mailbox), 4.x.x or
``Action: delayed`` a soft one; ``delivered``, ``relayed`` and ``expanded``
are successes and change nobody.
"""

from __future__ import annotations

import re
from email.message import Message
from email.parser import BytesHeaderParser

from dispatch.bounces.model import ENHANCED, MAILBOX_GONE, Finding, Kind, clip, kind_of_status

_BASIC = re.compile(r"\b([45])\d\d\b")


def is_report(message: Message, report_type: str) -> bool:
    return (message.get_content_type() == "multipart/report"
            and str(message.get_param("report-type", "")).lower() == report_type)


def field_blocks(part: Message) -> list[dict[str, str]]:
    """The blocks of a ``message/delivery-status`` or ``message/feedback-report``
    part as lower-cased field names -> values, however the parser held them."""
    payload = part.get_payload()
    blocks: list[Message] = []
    if isinstance(payload, list):
        blocks = [p for p in payload if isinstance(p, Message)]
    else:
        raw = part.get_payload(decode=True)
        data = raw if isinstance(raw, bytes) else str(payload).encode("utf-8", "replace")
        for chunk in re.split(rb"\r?\n\s*\r?\n", data.strip()):
            if chunk.strip():
                blocks.append(BytesHeaderParser().parsebytes(chunk + b"\n"))
    return [{k.lower(): " ".join(str(v).split()) for k, v in block.items()} for block in blocks]


def _address(value: str) -> str:
    """``rfc822; ann@example.org`` -> ``ann@example.org``."""
    _, _, address = value.rpartition(";")
    return address.strip().strip("<>").strip()


def recipient_finding(fields: dict[str, str]) -> Finding | None:
    action = fields.get("action", "").lower().split(" ")[0]
    status = fields.get("status", "").split(" ")[0]
    diagnostic = fields.get("diagnostic-code")
    recipient = _address(fields.get("final-recipient") or fields.get("original-recipient", ""))
    if action in ("delivered", "relayed", "expanded"):
        return Finding(Kind.IGNORED, recipient, status or None, f"action {action}")
    if action == "delayed":
        return Finding(Kind.SOFT, recipient, status or None, clip(diagnostic) or "delayed")
    if action != "failed":
        return None
    code = status if ENHANCED.match(status) else None
    if code is None and diagnostic:
        found = ENHANCED.search(diagnostic)
        code = found.group(0) if found else None
        if code is None:
            basic = _BASIC.search(diagnostic.partition(";")[2] or diagnostic)
            # A bare 5xx says "permanent" but not whose fault: count it as soft.
            return Finding(Kind.SOFT, recipient, basic.group(0) if basic else None,
                           clip(diagnostic))
    if code is None:
        return Finding(Kind.SOFT, recipient, None, clip(diagnostic) or "failed, no status")
    if code.endswith(".0.0"):
        # "Other or undefined status": the server's own words may carry the
        # specific code (550 5.7.1 …); without one, only words saying the
        # mailbox is gone make it hard.
        specific = [m.group(0) for m in ENHANCED.finditer(diagnostic or "")
                    if not m.group(0).endswith(".0.0") and m.group(1) == code[0]]
        if specific:
            code = specific[0]
        elif code.startswith("5"):
            gone = MAILBOX_GONE.search(diagnostic or "") is not None
            return Finding(Kind.HARD if gone else Kind.SOFT, recipient, code,
                           clip(diagnostic) or f"status {code}")
    return Finding(kind_of_status(code), recipient, code, clip(diagnostic) or f"status {code}")


def parse_dsn(message: Message) -> list[Finding]:
    """Each recipient's finding in a DSN (empty if it holds no status part)."""
    findings: list[Finding] = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for fields in field_blocks(part)[1:]:  # the first block is per-message
            found = recipient_finding(fields)
            if found is not None:
                findings.append(found)
    return findings
