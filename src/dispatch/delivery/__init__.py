"""Delivery: transports behind one small protocol, and the engine that drains
the outbox with them (claim → personalise late → send → record)."""

from dispatch.delivery.capture import CaptureTransport, captured
from dispatch.delivery.engine import deliver, make_transport
from dispatch.delivery.limits import TokenBucket
from dispatch.delivery.report import DeliveryReport
from dispatch.delivery.settings import (
    DeliverySettings,
    SmtpSettings,
    load_delivery_settings,
    parse_smtp_url,
)
from dispatch.delivery.smtp import SmtpTransport
from dispatch.delivery.transport import (
    Connection,
    SendResult,
    Transport,
    TransportUnavailable,
    classify,
)

__all__ = [
    "CaptureTransport",
    "Connection",
    "DeliveryReport",
    "DeliverySettings",
    "SendResult",
    "SmtpSettings",
    "SmtpTransport",
    "TokenBucket",
    "Transport",
    "TransportUnavailable",
    "captured",
    "classify",
    "deliver",
    "load_delivery_settings",
    "make_transport",
    "parse_smtp_url",
]
