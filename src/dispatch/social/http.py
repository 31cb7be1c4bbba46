"""The job engine's transport shape for social posts.

Every social transport is a :class:`PostTransport`: the engine opens it and
sends an :class:`~dispatch.social.queue.OutgoingPost`, and gets back a
classified :class:`~dispatch.jobs.states.TransportResult`, exactly as an
email transport answers. A subclass writes only :meth:`PostTransport.post`:
it returns :class:`Delivered` or raises :class:`~dispatch.http_api.RetryLater`
/ :class:`~dispatch.http_api.PermanentFailure` (the HTTP helpers it uses
for that are :mod:`dispatch.http_api`'s); :func:`attempt` classifies.
:class:`MissingSecret` is raised while building a transport whose token is
not in the environment: nothing is sent and the posts stay queued.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from dispatch.errors import DeliveryError
from dispatch.http_api import PermanentFailure, RetryLater, classified
from dispatch.jobs import transport as jobs
from dispatch.jobs.states import ResultClass, TransportResult

if TYPE_CHECKING:
    from dispatch.social.queue import ClaimedPost, OutgoingPost


@dataclass(frozen=True, slots=True)
class Delivered:
    remote_id: str | None = None
    remote_url: str | None = None


class MissingSecret(DeliveryError):
    pass


class Poster(Protocol):
    def post(self, claimed: ClaimedPost, now: datetime) -> Delivered: ...


Transport = jobs.Transport["OutgoingPost"]
"""What a network's transport is to the job engine."""


class PostTransport:
    """The engine-facing half every social transport shares (one connection:
    itself; the HTTP client is shared and opened by the caller)."""

    name = "social"

    def open(self) -> PostTransport:
        return self

    def close(self) -> None:
        pass

    def send(self, message: OutgoingPost) -> TransportResult:
        return attempt(self, message)

    def post(self, claimed: ClaimedPost, now: datetime) -> Delivered:
        raise NotImplementedError


def attempt(poster: Poster, message: OutgoingPost) -> TransportResult:
    """Send one post and classify what happened for the job engine.

    The HTTP statuses stay in :mod:`dispatch.http_api`: 429 is throttled,
    408/425/5xx and network trouble temporary, any other 4xx permanent.
    """
    try:
        done = poster.post(message.claimed, message.now)
    except (RetryLater, PermanentFailure) as exc:
        return classified(exc)
    except (ValueError, KeyError) as exc:
        # A 2xx we could not read: the post may exist. Retrying is safe where
        # the transport deduplicates (Mastodon's key, Bluesky's record key).
        return TransportResult(ResultClass.TEMPORARY, f"unreadable answer: {type(exc).__name__}")
    return TransportResult(ResultClass.DELIVERED, done.remote_url or done.remote_id or "",
                           remote_id=done.remote_id, remote_url=done.remote_url)
