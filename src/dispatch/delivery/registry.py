"""The email transports dispatch knows, one line each.

A transport is declared in its own module as an :class:`EmailTransport`
(name, whether it needs a server URL, how it is built from the settings) and
named here. ``[delivery] transport`` is checked against these names when
dispatch.toml is read, and the engine builds whichever is configured
through :func:`email_transport` — it never names a transport itself.

Adding one (say an HTTP provider API) is a new module with its declaration
plus one line below.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dispatch.config import Settings
    from dispatch.delivery.settings import DeliverySettings
    from dispatch.delivery.transport import Transport

EMAIL_TRANSPORTS: dict[str, str] = {
    "capture": "dispatch.delivery.capture:CAPTURE",
    "smtp": "dispatch.delivery.smtp:SMTP",
    "dry-run": "dispatch.delivery.dryrun:DRY_RUN",
}
"""Name -> ``module:attribute`` of its declaration, imported when first used."""


@dataclass(frozen=True, slots=True)
class EmailTransport:
    name: str
    summary: str
    """One line for the README and ``dispatch check``."""
    build: Callable[[Settings, DeliverySettings], Transport] | None
    """Opens the transport; None for one that sends nothing (a dry run)."""
    needs_server: bool = False
    """True when it cannot work without an SMTP URL (or its own URL)."""


@cache
def email_transport(name: str) -> EmailTransport:
    module, attr = EMAIL_TRANSPORTS[name].split(":")
    declared = getattr(importlib.import_module(module), attr)
    assert isinstance(declared, EmailTransport) and declared.name == name
    return declared
