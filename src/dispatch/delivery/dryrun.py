"""``transport = "dry-run"``: nothing is sent; the engine reports what is due."""

from __future__ import annotations

from dispatch.delivery.registry import EmailTransport

DRY_RUN = EmailTransport("dry-run", "sends nothing; reports how many messages are due", None)
