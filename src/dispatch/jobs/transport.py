"""The one shape every transport has, email or social.

A :class:`Transport` opens :class:`Connection` objects; a connection sends
one message (an email's :class:`~dispatch.delivery.transport.Envelope`, a
social :class:`~dispatch.social.queue.OutgoingPost`) and says what happened as
a classified :class:`~dispatch.jobs.states.TransportResult` (delivered,
throttled, temporary, permanent or bounced, with the server's text). It
never raises for an answer, only :class:`TransportUnavailable` when it cannot
reach its server at all: then nothing was sent, and the worker hands the
batch back without spending an attempt and backs off as a whole.

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
