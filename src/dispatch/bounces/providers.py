"""Provider webhooks: authenticate each request as the provider documents,
refuse replays, and turn its events into the same findings the mailbox
gives.

=============  ===================================================  =========================
provider       authentication                                       replay protection
=============  ===================================================  =========================
Amazon SES     SNS signature + certificate host allow-list          ``Timestamp`` within the
                                                                    window; ``MessageId`` once
Postmark       HTTP basic auth (user and password you choose)        each record ``ID`` once
Mailgun        HMAC-SHA256(signing key, timestamp + token)          timestamp within the
                                                                    window; ``token`` once
SendGrid       ECDSA P-256 over timestamp + body (verification key)  timestamp within the
                                                                    window; each request once
=============  ===================================================  =========================

Each accepted request's nonce is written in the same transaction as its
decisions; the same request again is answered 409 and changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from dispatch.bounces.model import ENHANCED, Finding, Kind, clip, kind_of_status
from dispatch.bounces.settings import BounceSettings

FUTURE_SKEW = timedelta(minutes=5)
"""A timestamp this far ahead of our clock is still accepted (clock drift)."""


class WebhookRejected(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """One provider event as a finding about an address."""

    report_id: str
    email: str
    finding: Finding
    envelope_sender: str = ""
    """The message's return path when the provider reports it (a VERP
    address names the exact message)."""


@dataclass(frozen=True, slots=True)
class Accepted:
    nonce: str
    events: tuple[ProviderEvent, ...]
    confirm_url: str | None = None
    """SNS SubscriptionConfirmation: the URL to fetch to confirm."""


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected(400, "the body is not JSON") from None


def check_fresh(when: datetime, now: datetime, window: int) -> None:
    if when < now - timedelta(seconds=window):
        raise WebhookRejected(400, f"stale request: older than {window} seconds (a replay?)")
    if when > now + FUTURE_SKEW:
        raise WebhookRejected(400, "request timestamp is in the future")


def _epoch(value: object) -> datetime:
    try:
        return datetime.fromtimestamp(float(str(value)), UTC)
    except (ValueError, OverflowError, OSError):
        raise WebhookRejected(400, "the timestamp is not a number") from None


def _bounce(code: str | None, permanent: bool, diagnostic: str | None) -> Kind:
    """A provider's permanent/temporary plus the status code, by our rules."""
    if not permanent:
        return Kind.SOFT
    if code and ENHANCED.search(code):
        return kind_of_status(code)
    return Kind.HARD


# --- Amazon SES over SNS -------------------------------------------------------

def ses_events(notification: Mapping[str, Any]) -> list[ProviderEvent]:
    """Events of one SES notification (``notificationType`` or event
    publishing's ``eventType``)."""
    kind = str(notification.get("notificationType") or notification.get("eventType") or "")
    found = notification.get("mail")
    mail: Mapping[str, Any] = found if isinstance(found, dict) else {}
    source = str(mail.get("source", ""))
    events: list[ProviderEvent] = []
    if kind == "Bounce":
        bounce = notification.get("bounce") or {}
        permanent = bounce.get("bounceType") == "Permanent"
        rid = str(bounce.get("feedbackId") or mail.get("messageId") or "")
        for rcpt in bounce.get("bouncedRecipients") or []:
            status = rcpt.get("status")
            diagnostic = clip(str(rcpt.get("diagnosticCode") or
                                  f"{bounce.get('bounceType')}/{bounce.get('bounceSubType')}"))
            events.append(ProviderEvent(f"ses:{rid}", str(rcpt.get("emailAddress", "")),
                                        Finding(_bounce(status, permanent, diagnostic),
                                                str(rcpt.get("emailAddress", "")),
                                                status or bounce.get("bounceType"), diagnostic),
                                        source))
    elif kind == "Complaint":
        complaint = notification.get("complaint") or {}
        feedback = str(complaint.get("complaintFeedbackType") or "abuse")
        rid = str(complaint.get("feedbackId") or mail.get("messageId") or "")
        for rcpt in complaint.get("complainedRecipients") or []:
            address = str(rcpt.get("emailAddress", ""))
            finding = (Finding(Kind.COMPLAINT, address, feedback, f"SES complaint ({feedback})")
                       if feedback != "not-spam" else
                       Finding(Kind.IGNORED, address, feedback, "SES feedback: not-spam"))
            events.append(ProviderEvent(f"ses:{rid}", address, finding, source))
    return events


# --- Postmark ------------------------------------------------------------------

_POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated"}
_POSTMARK_SOFT = {"SoftBounce", "Transient", "DnsError", "Blocked", "SMTPApiError",
                  "ChallengeVerification", "Undeliverable", "Unknown"}


def check_basic_auth(header: str | None, user: str, password: str | None) -> None:
    if not password:
        raise WebhookRejected(404, "this webhook is not configured")
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    if not header or not hmac.compare_digest(header.encode(), expected.encode()):
        raise WebhookRejected(401, "wrong or missing credentials")


def postmark_record_id(payload: Mapping[str, Any]) -> str:
    """Bounces and complaints have an ``ID``; a SubscriptionChange has only
    its message and the time of the change."""
    if payload.get("ID"):
        return str(payload["ID"])
    if payload.get("MessageID") and payload.get("ChangedAt"):
        return f"{payload['MessageID']}@{payload['ChangedAt']}"
    return ""


def postmark_events(payload: Mapping[str, Any]) -> list[ProviderEvent]:
    record = str(payload.get("RecordType", ""))
    rid = f"postmark:{record}:{postmark_record_id(payload)}"
    email = str(payload.get("Email") or payload.get("Recipient") or "")
    if record == "Bounce":
        kind_text = str(payload.get("Type", ""))
        details = clip(str(payload.get("Details") or payload.get("Description") or kind_text))
        code_found = ENHANCED.search(details or "")
        code = code_found.group(0) if code_found else None
        if kind_text in _POSTMARK_HARD:
            kind = kind_of_status(code) if code else Kind.HARD
        elif kind_text == "SpamComplaint":
            kind = Kind.COMPLAINT
        elif kind_text == "AutoResponder":
            kind = Kind.AUTOREPLY
        elif kind_text in _POSTMARK_SOFT:
            kind = Kind.SOFT
        else:
            kind = Kind.IGNORED
        return [ProviderEvent(rid, email, Finding(kind, email, code or kind_text, details))]
    if record == "SpamComplaint":
        return [ProviderEvent(rid, email, Finding(Kind.COMPLAINT, email, "SpamComplaint",
                                                  "Postmark spam complaint"))]
    if record == "SubscriptionChange" and payload.get("SuppressSending") is True:
        reason = str(payload.get("SuppressionReason", ""))
        if reason == "ManualSuppression":
            return [ProviderEvent(rid, email, Finding(Kind.UNSUBSCRIBE, email, reason,
                                                      "Postmark: the recipient unsubscribed"))]
    return []


# --- Mailgun -------------------------------------------------------------------

def mailgun_accept(payload: Mapping[str, Any], key: str | None, now: datetime,
                   window: int) -> Accepted:
    if not key:
        raise WebhookRejected(404, "this webhook is not configured")
    signature = payload.get("signature")
    if not isinstance(signature, dict):
        raise WebhookRejected(401, "no signature")
    timestamp, token = str(signature.get("timestamp", "")), str(signature.get("token", ""))
    given = str(signature.get("signature", ""))
    expected = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not token or not hmac.compare_digest(expected.encode(), given.encode()):
        raise WebhookRejected(401, "the signature does not verify")
    check_fresh(_epoch(timestamp), now, window)
    data = payload.get("event-data") or {}
    event = str(data.get("event", ""))
    email = str(data.get("recipient", ""))
    rid = f"mailgun:{data.get('id', token)}"
    status = data.get("delivery-status") or {}
    sender = str((data.get("envelope") or {}).get("sender", ""))
    events: list[ProviderEvent] = []
    if event == "failed":
        permanent = data.get("severity") == "permanent"
        code = str(status.get("enhanced-code") or status.get("code") or "") or None
        text = clip(str(status.get("message") or status.get("description") or
                        data.get("reason") or "failed"))
        if code is not None and not ENHANCED.search(code):
            found = ENHANCED.search(text or "")
            code = found.group(0) if found else code
        events.append(ProviderEvent(rid, email, Finding(_bounce(code, permanent, text), email,
                                                        code, text), sender))
    elif event == "complained":
        events.append(ProviderEvent(rid, email, Finding(Kind.COMPLAINT, email, "complained",
                                                        "Mailgun spam complaint"), sender))
    elif event == "unsubscribed":
        events.append(ProviderEvent(rid, email, Finding(Kind.UNSUBSCRIBE, email, "unsubscribed",
                                                        "Mailgun unsubscribe"), sender))
    return Accepted(f"mailgun:{token}", tuple(events))


# --- SendGrid ------------------------------------------------------------------

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


def _sendgrid_key(text: str) -> ec.EllipticCurvePublicKey:
    try:
        key = (load_pem_public_key(text.encode()) if "BEGIN PUBLIC KEY" in text
               else load_der_public_key(base64.b64decode(text)))
    except (ValueError, binascii.Error):
        raise WebhookRejected(500, "DISPATCH_SENDGRID_PUBLIC_KEY is not a public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise WebhookRejected(500, "DISPATCH_SENDGRID_PUBLIC_KEY is not an ECDSA key")
    return key


def sendgrid_accept(headers: Mapping[str, str], body: bytes, key_text: str | None,
                    now: datetime, window: int) -> Accepted:
    if not key_text:
        raise WebhookRejected(404, "this webhook is not configured")
    signature, timestamp = headers.get(SENDGRID_SIGNATURE), headers.get(SENDGRID_TIMESTAMP)
    if not signature or not timestamp:
        raise WebhookRejected(401, "no signature")
    try:
        raw_signature = base64.b64decode(signature, validate=True)
        _sendgrid_key(key_text).verify(raw_signature, timestamp.encode() + body,
                                       ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        raise WebhookRejected(401, "the signature does not verify") from None
    check_fresh(_epoch(timestamp), now, window)
    events: list[ProviderEvent] = []
    payload = _json(body)
    for item in payload if isinstance(payload, list) else []:
        if not isinstance(item, dict):
            continue
        event, email = str(item.get("event", "")), str(item.get("email", ""))
        rid = f"sendgrid:{item.get('sg_event_id', '')}"
        if event == "bounce":
            code = str(item.get("status") or "") or None
            text = clip(str(item.get("reason") or "bounce"))
            blocked = item.get("type") == "blocked" or item.get("bounce_classification") in (
                "Reputation", "Content", "Frequency or Volume Too High")
            kind = Kind.SOFT if blocked else _bounce(code, True, text)
            events.append(ProviderEvent(rid, email, Finding(kind, email, code, text)))
        elif event == "spamreport":
            events.append(ProviderEvent(rid, email, Finding(Kind.COMPLAINT, email, "spamreport",
                                                            "SendGrid spam report")))
        elif event in ("unsubscribe", "group_unsubscribe"):
            events.append(ProviderEvent(rid, email, Finding(Kind.UNSUBSCRIBE, email, event,
                                                            f"SendGrid {event}")))
    # Same timestamp and body = the same request (an ECDSA signature can be
    # re-encoded, so the signature itself is not the nonce).
    nonce = "sendgrid:" + hashlib.sha256(timestamp.encode() + b"." + body).hexdigest()
    return Accepted(nonce, tuple(events))


def configured(config: BounceSettings) -> dict[str, bool]:
    """Which webhooks have their secret set (the others answer 404)."""
    return {"ses": True, "postmark": bool(config.postmark_password),
            "mailgun": bool(config.mailgun_key), "sendgrid": bool(config.sendgrid_key)}
