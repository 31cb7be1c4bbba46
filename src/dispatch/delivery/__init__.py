"""Delivery: transports behind one small protocol, and the engine that drains
the outbox with them (claim → personalise late → send → record)."""

# Names are imported on first use (PEP 562): reading the settings models in
# this package must not load every module of it.
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        Envelope,
        SendResult,
        Transport,
        TransportUnavailable,
        classify,
    )

_LAZY = {
    "CaptureTransport": "dispatch.delivery.capture",
    "captured": "dispatch.delivery.capture",
    "deliver": "dispatch.delivery.engine",
    "make_transport": "dispatch.delivery.engine",
    "TokenBucket": "dispatch.delivery.limits",
    "DeliveryReport": "dispatch.delivery.report",
    "DeliverySettings": "dispatch.delivery.settings",
    "SmtpSettings": "dispatch.delivery.settings",
    "load_delivery_settings": "dispatch.delivery.settings",
    "parse_smtp_url": "dispatch.delivery.settings",
    "SmtpTransport": "dispatch.delivery.smtp",
    "Connection": "dispatch.delivery.transport",
    "Envelope": "dispatch.delivery.transport",
    "SendResult": "dispatch.delivery.transport",
    "Transport": "dispatch.delivery.transport",
    "TransportUnavailable": "dispatch.delivery.transport",
    "classify": "dispatch.delivery.transport",
}

__all__ = [
    "CaptureTransport",
    "Connection",
    "DeliveryReport",
    "DeliverySettings",
    "Envelope",
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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
