"""The one shape every transport has, email or social.

A :class:`Transport` opens :class:`Connection` objects; a connection sends
one message (an email's :class:`~dispatch.delivery.transport.Envelope`, a
social :class:`~dispatch.social.queue.OutgoingPost`) and says what happened as
a classified :class:`~dispatch.jobs.states.TransportResult` (delivered,
throttled, temporary, permanent or bounced, with the server's text). It
never raises for an answer, only :class:`TransportUnavailable` when it cannot
reach its server at all: then nothing was sent, and the worker hands the
batch back without spending an attempt and backs off as a whole.

A connection may also offer ``begin(message) -> Staged`` (:class:`Staging`):
what carries none of the message's content (an email's envelope: MAIL FROM,
RCPT TO) goes out at once, and the content only with :meth:`Staged.finish`,
or never (:meth:`Staged.abort`). The worker uses it to do its bookkeeping
while the envelope's round trip is under way; a transport without it (local
capture, the social APIs) is simply sent to with ``send``.

The protocol codes (SMTP replies, HTTP statuses) stay inside the transports;
:mod:`dispatch.jobs.worker` acts on the class alone.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from dispatch.errors import DeliveryError
from dispatch.jobs.states import TransportResult

M_contra = TypeVar("M_contra", contravariant=True)


class TransportUnavailable(DeliveryError):
    """The server could not be reached; nothing was sent."""


class Connection(Protocol[M_contra]):
    def send(self, message: M_contra) -> TransportResult: ...
    def close(self) -> None: ...


class Transport(Protocol[M_contra]):
    @property
    def name(self) -> str: ...
    def open(self) -> Connection[M_contra]: ...


class Staged(Protocol):
    """A message begun on a connection: none of its content has gone out yet."""

    def release(self) -> None:
        """Send the content now, without waiting for the answer."""
        ...

    def finish(self) -> TransportResult:
        """Send the content (unless released) and say what happened, as ``send`` would."""
        ...

    def abort(self) -> None:
        """Give the message up; nothing of it is delivered."""
        ...


class Staging(Protocol[M_contra]):
    def begin(self, message: M_contra) -> Staged: ...


class Settled:
    """A :class:`Staged` whose answer is already known (nothing went out)."""

    __slots__ = ("answer",)

    def __init__(self, answer: TransportResult) -> None:
        self.answer = answer

    def release(self) -> None:
        pass

    def finish(self) -> TransportResult:
        return self.answer

    def abort(self) -> None:
        pass
