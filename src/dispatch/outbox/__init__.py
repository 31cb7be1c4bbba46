"""The durable outbox: editions queued once, rows claimed under leases.

Row life cycle::

    queued --claim--> sending --fenced ack--> sent | failed | suppressed
       ^                 |--- 4xx / timeout ---> queued (available_at = now + backoff)
       '---- reaper: lease expired -------------'
    queued --cancel--> cancelled;  queued --unsubscribe--> suppressed
    sending --cancel or unsubscribe seen just before the send--> cancelled | suppressed
"""

from dispatch.outbox.control import (
    EditionStatus,
    cancel,
    edition_status,
    edition_statuses,
    failure_reasons,
    pause,
    resume,
    retry_failed,
)
from dispatch.outbox.lease import Claim, ClaimedRow, RowResult, claim, reap, record, renew
from dispatch.outbox.policy import RetryPolicy
from dispatch.outbox.queue import (
    QueuedEdition,
    StorableEdition,
    audience_size,
    edition_json,
    queue_edition,
)

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
