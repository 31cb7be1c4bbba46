"""The words of the job engine: statuses, outcomes and transport result classes.

Every value is a :class:`~enum.StrEnum`, so it is stored in the database as
its plain text (``'queued'``, ``'sent'`` …) and compares equal to it, while the
code names each state in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class JobStatus(StrEnum):
    """Where one job (an email to one reader, one social post) stands."""

    QUEUED = "queued"
    """Waiting; claimable once ``available_at`` has passed."""
    SENDING = "sending"
    """Leased by a worker until ``lease_until``."""
    PAUSED = "paused"
    """Held by an operator (jobs controlled one by one: social posts)."""
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    """Not sent because the recipient is no longer active."""
    CANCELLED = "cancelled"

    @property
    def pending(self) -> bool:
        return self in (JobStatus.QUEUED, JobStatus.SENDING, JobStatus.PAUSED)


FINISHED = (JobStatus.SENT, JobStatus.FAILED, JobStatus.SUPPRESSED, JobStatus.CANCELLED)


class GroupState(StrEnum):
    """The state of a group of jobs controlled together (an email edition)."""

    SENDING = "sending"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    COMPLETE = "complete"
    """Derived, never stored: nothing is pending any more."""


class Outcome(StrEnum):
    """What a worker reports for one claimed job; :func:`dispatch.jobs.lease.settle` acts on it."""

    SENT = "sent"
    RETRY = "retry"
    """Temporary trouble: queued again after the policy's backoff (spends an attempt)."""
    FAILED = "failed"
    BOUNCED = "bounced"
    """Failed because the address is gone (the recipient is suppressed)."""
    SUPPRESSED = "suppressed"
    CANCELLED = "cancelled"
    RELEASE = "release"
    """Handed back untried after a backoff; the attempt is given back."""
    HANDBACK = "handback"
    """Handed back untried, due again at once (the worker is stopping)."""


class ResultClass(StrEnum):
    """What a transport says happened, in words the engine acts on.

    Transports translate their protocol (SMTP reply codes, HTTP statuses)
    into one of these; the engine never sees a protocol code.
    """

    DELIVERED = "delivered"
    THROTTLED = "throttled"
    """The server asks us to slow down: retry later, and pace the worker down."""
    TEMPORARY = "temporary"
    """Try again later (a busy mailbox, a dropped connection, a 5xx from an API)."""
    PERMANENT = "permanent"
    """Refused for good; retrying cannot help."""
    BOUNCED = "bounced"
    """Refused because the recipient's address does not exist."""

    @property
    def outcome(self) -> Outcome:
        return _OUTCOME[self]


_OUTCOME = {
    ResultClass.DELIVERED: Outcome.SENT,
    ResultClass.THROTTLED: Outcome.RETRY,
    ResultClass.TEMPORARY: Outcome.RETRY,
    ResultClass.PERMANENT: Outcome.FAILED,
    ResultClass.BOUNCED: Outcome.BOUNCED,
}


@dataclass(frozen=True, slots=True)
class TransportResult:
    """One classified answer from a transport, with the server's own words."""

    klass: ResultClass
    text: str = ""
    """The server's reply as it gave it (its message id, or why it refused)."""
    remote_id: str | None = None
    remote_url: str | None = None
    retry_after: float | None = None
    """Seconds the server asked us to wait, when it said (HTTP Retry-After)."""

    @property
    def outcome(self) -> Outcome:
        return self.klass.outcome

    @property
    def detail(self) -> str:
        return self.text
