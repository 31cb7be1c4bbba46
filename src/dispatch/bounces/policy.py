"""What a finding does to a subscriber: the one place the policy lives.

- a hard bounce suppresses at once (status ``bounced``);
- soft bounces suppress once ``soft_limit`` of them (default 3) arrived
  within ``soft_window`` days (default 30), counting only those since the
  address was last re-activated;
- a complaint suppresses for good (``complained``: no import, no
  ``reactivate`` brings the address back);
- a mailto unsubscribe unsubscribes;
- an auto-reply, a success DSN or a non-abuse feedback report changes nobody.
"""

from __future__ import annotations

from dataclasses import dataclass

from dispatch.bounces.model import Kind
from dispatch.subscribers.repository import SubscriberStatus


@dataclass(frozen=True, slots=True)
class Verdict:
    status: SubscriberStatus | None
    """The status to set, or None to leave the subscriber as they are."""
    action: str
    """What was done, in words, for the history and the report."""


def decide(kind: Kind, current: SubscriberStatus | None, soft_count: int, soft_limit: int,
           window_days: int) -> Verdict:
    """``soft_count`` includes the finding being decided (for a soft one)."""
    if current is None:
        return Verdict(None, "no change: no subscriber for this message")
    if kind is Kind.COMPLAINT:
        if current == "complained":
            return Verdict(None, "no change: already complained")
        return Verdict("complained", "suppressed for good: spam complaint")
    if kind is Kind.HARD:
        if current in ("bounced", "complained"):
            return Verdict(None, f"no change: already {current}")
        return Verdict("bounced", "suppressed: hard bounce")
    if kind is Kind.SOFT:
        counted = f"{soft_count} of {soft_limit} soft bounces in {window_days} days"
        if current in ("bounced", "complained"):
            return Verdict(None, f"no change: already {current} ({counted})")
        if soft_count >= soft_limit:
            return Verdict("bounced", f"suppressed: {counted}")
        return Verdict(None, f"counted: {counted}")
    if kind is Kind.UNSUBSCRIBE:
        if current != "active":
            return Verdict(None, f"no change: already {current}")
        return Verdict("unsubscribed", "unsubscribed by mail to the List-Unsubscribe address")
    if kind is Kind.AUTOREPLY:
        return Verdict(None, "no change: automatic reply, not a bounce")
    return Verdict(None, "no change: nothing to act on")
