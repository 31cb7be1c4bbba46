"""What one delivery run did, in numbers and one line."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class DeliveryReport:
    transport: str
    sent: int = 0
    retried: int = 0
    failed: int = 0
    bounced: int = 0
    suppressed: int = 0
    cancelled: int = 0
    """Claimed rows not sent because their edition was cancelled meanwhile."""
    released: int = 0
    """Rows handed back untried (server unreachable, stop requested)."""
    reaped: int = 0
    lost: int = 0
    """Outcomes refused because the lease had been lost (the row was reclaimed)."""
    stopped: str | None = None
    next_due: datetime | None = None
    due: int = 0
    dry_run: bool = False

    def summary(self) -> str:
        if self.dry_run:
            return f"dry run: {self.due} message(s) due, nothing sent ({self.transport})"
        parts = [f"sent {self.sent}", f"retrying {self.retried}", f"failed {self.failed}"]
        parts += [f"{n} {what}" for n, what in ((self.bounced, "bounced"),
                                                (self.suppressed, "suppressed"),
                                                (self.cancelled, "cancelled"),
                                                (self.released, "handed back"),
                                                (self.reaped, "expired leases reclaimed"),
                                                (self.lost, "late acks refused")) if n]
        text = ", ".join(parts) + f" via {self.transport}"
        if self.stopped:
            text += f"; stopped: {self.stopped}"
        if self.next_due is not None:
            text += f"; next retry due {self.next_due:%Y-%m-%d %H:%M:%S} UTC"
        return text
