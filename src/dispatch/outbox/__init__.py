"""The durable outbox: editions queued once, rows claimed under leases.

Row life cycle::

    queued --claim--> sending --fenced ack--> sent | failed | suppressed
       ^                 |--- 4xx / timeout ---> queued (available_at = now + backoff)
       '---- reaper: lease expired -------------'
    queued --cancel--> cancelled;  queued --unsubscribe--> suppressed
    sending --cancel or unsubscribe seen just before the send--> cancelled | suppressed
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dispatch.outbox.control import EditionStatus as EditionStatus
    from dispatch.outbox.control import cancel as cancel
    from dispatch.outbox.control import edition_status as edition_status
    from dispatch.outbox.control import edition_statuses as edition_statuses
    from dispatch.outbox.control import failure_reasons as failure_reasons
    from dispatch.outbox.control import pause as pause
    from dispatch.outbox.control import resume as resume
    from dispatch.outbox.control import retry_failed as retry_failed
    from dispatch.outbox.lease import Claim as Claim
    from dispatch.outbox.lease import ClaimedRow as ClaimedRow
    from dispatch.outbox.lease import RowResult as RowResult
    from dispatch.outbox.lease import claim as claim
    from dispatch.outbox.lease import reap as reap
    from dispatch.outbox.lease import record as record
    from dispatch.outbox.lease import renew as renew
    from dispatch.outbox.policy import RetryPolicy as RetryPolicy
    from dispatch.outbox.queue import QueuedEdition as QueuedEdition
    from dispatch.outbox.queue import StorableEdition as StorableEdition
    from dispatch.outbox.queue import audience_size as audience_size
    from dispatch.outbox.queue import edition_json as edition_json
    from dispatch.outbox.queue import queue_edition as queue_edition

_WHERE = {name: module for module, names in {
    "control": ("EditionStatus", "cancel", "edition_status", "edition_statuses",
                "failure_reasons", "pause", "resume", "retry_failed"),
    "lease": ("Claim", "ClaimedRow", "RowResult", "claim", "reap", "record", "renew"),
    "policy": ("RetryPolicy",),
    "queue": ("QueuedEdition", "StorableEdition", "audience_size", "edition_json",
              "queue_edition"),
}.items() for name in names}
"""Where each name of the package lives, imported on first use (PEP 562):
``[delivery]``'s settings need only ``outbox.policy``, and reading them for
``dispatch check`` must not load SQLAlchemy with the rest of the outbox."""


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"dispatch.outbox.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Claim",
    "ClaimedRow",
    "EditionStatus",
    "QueuedEdition",
    "RetryPolicy",
    "RowResult",
    "StorableEdition",
    "audience_size",
    "cancel",
    "claim",
    "edition_json",
    "edition_status",
    "edition_statuses",
    "failure_reasons",
    "pause",
    "queue_edition",
    "reap",
    "record",
    "renew",
    "resume",
    "retry_failed",
]
