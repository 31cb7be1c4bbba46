"""The one small protocol every transport implements, and SMTP reply classes.

A :class:`Transport` opens :class:`Connection` objects; a connection sends
one message to one recipient and says what happened as a :class:`SendResult`
— it never raises for a reply, only :class:`TransportUnavailable` when it
cannot reach the server at all (then nothing was sent and the rows go back
to the queue without spending an attempt).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal, Protocol

from dispatch.errors import DeliveryError

Outcome = Literal["sent", "retry", "failed", "bounced"]
BOUNCE_CODES = (550, 551, 553)


class TransportUnavailable(DeliveryError):
    """The server could not be reached; nothing was sent."""


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    detail: str = ""
    code: int | None = None


class Connection(Protocol):
    def send(self, sender: str, recipient: str, message: bytes) -> SendResult: ...
    def close(self) -> None: ...


class Transport(Protocol):
    @property
    def name(self) -> str: ...
    def open(self) -> Connection: ...


def classify(code: int, text: str, *, at_recipient: bool,
             bounce_codes: Collection[int] = BOUNCE_CODES) -> SendResult:
    """Map an SMTP reply to what the outbox does (FIELD-NOTES 5.2).

    4xx is temporary and never a failure (throttling included). A 5xx fails
    the row; 550/551/553 given to the recipient itself is a hard bounce that
    suppresses the address — the same code after DATA is about the message
    (content, policy), not the mailbox, so it does not bounce the person.
    """
    detail = f"{code} {text}".strip()
    if 200 <= code < 300:
        return SendResult("sent", detail, code)
    if 400 <= code < 500:
        return SendResult("retry", detail, code)
    if at_recipient and code in bounce_codes:
        return SendResult("bounced", detail, code)
    return SendResult("failed", detail, code)
