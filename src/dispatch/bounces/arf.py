"""RFC 5965 Abuse Reporting Format (``multipart/report;
report-type=feedback-report``): what a mailbox provider's feedback loop
sends when a reader presses "this is spam".

``Feedback-Type: abuse`` is a complaint. The other types (``fraud``,
``virus``, ``not-spam``, ``other``) are recorded and change nobody: they are
not the reader asking to stop. Providers often redact the reader's address
in the report (RFC 6590), which is why the token in ``Original-Mail-From``
or in the returned message is what names the subscriber.
"""

from __future__ import annotations

from email.message import Message

from dispatch.bounces.dsn import field_blocks
from dispatch.bounces.model import Finding, Kind


def parse_arf(message: Message) -> list[Finding]:
    for part in message.walk():
        if part.get_content_type() != "message/feedback-report":
            continue
        blocks = field_blocks(part)
        fields = blocks[0] if blocks else {}
        kind_text = fields.get("feedback-type", "").lower()
        recipient = fields.get("original-rcpt-to", "").strip("<> ")
        agent = fields.get("user-agent", "")
        note = f"feedback-type {kind_text or 'missing'}" + (f" from {agent}" if agent else "")
        if kind_text == "abuse":
            return [Finding(Kind.COMPLAINT, recipient, "abuse", note)]
        return [Finding(Kind.IGNORED, recipient, kind_text or None, note)]
    return []


def original_mail_from(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            blocks = field_blocks(part)
            return blocks[0].get("original-mail-from", "") if blocks else ""
    return ""
