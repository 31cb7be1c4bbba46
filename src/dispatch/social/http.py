"""What every HTTP transport shares: outcomes, status mapping, Retry-After.

A transport answers with :class:`Delivered` or raises one of (and
:func:`attempt` turns either into a classified
:class:`~dispatch.jobs.states.TransportResult` for the job engine)::

    DeliveryError
    ├── RetryLater        429, 408, 5xx, connection trouble: try again later
    ├── PermanentFailure  any other 4xx: the network said no; record why
    └── MissingSecret     the environment lacks the token: nothing was sent

Secrets never reach a message: every text that leaves here passes through
:func:`redact` with the transport's secrets.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

import httpx

from dispatch.errors import DeliveryError
from dispatch.jobs.states import ResultClass, TransportResult
from dispatch.social.queue import ClaimedPost


@dataclass(frozen=True, slots=True)
class Delivered:
    remote_id: str | None = None
    remote_url: str | None = None


class RetryLater(DeliveryError):
    def __init__(self, message: str, retry_after: float | None = None, *,
                 throttled: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.throttled = throttled
        """The network said "too many requests" (429), not just "not now"."""


class PermanentFailure(DeliveryError):
    pass


class MissingSecret(DeliveryError):
    pass


class Transport(Protocol):
    def send(self, claimed: ClaimedPost, now: datetime) -> Delivered: ...


def attempt(transport: Transport, claimed: ClaimedPost, now: datetime) -> TransportResult:
    """Send one post and classify what happened for the job engine.

    The HTTP statuses stay here: 429 is throttled, 408/425/5xx and network
    trouble temporary, any other 4xx permanent.
    """
    try:
        done = transport.send(claimed, now)
    except RetryLater as exc:
        klass = ResultClass.THROTTLED if exc.throttled else ResultClass.TEMPORARY
        return TransportResult(klass, str(exc), retry_after=exc.retry_after)
    except PermanentFailure as exc:
        return TransportResult(ResultClass.PERMANENT, str(exc))
    except (ValueError, KeyError) as exc:
        # A 2xx we could not read: the post may exist. Retrying is safe where
        # the transport deduplicates (Mastodon's key, Bluesky's record key).
        return TransportResult(ResultClass.TEMPORARY, f"unreadable answer: {type(exc).__name__}")
    return TransportResult(ResultClass.DELIVERED, done.remote_url or done.remote_id or "",
                           remote_id=done.remote_id, remote_url=done.remote_url)


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def retry_after_seconds(response: httpx.Response, now: datetime) -> float | None:
    """``Retry-After`` as seconds or an HTTP date; else Mastodon's
    ``X-RateLimit-Reset`` (ISO time) or Bluesky's ``RateLimit-Reset`` (epoch)."""
    value = response.headers.get("retry-after")
    if value:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            return max(0.0, (parsedate_to_datetime(value) - now).total_seconds())
        except (TypeError, ValueError):
            pass
    reset = response.headers.get("x-ratelimit-reset")
    if reset:
        try:
            return max(0.0, (datetime.fromisoformat(reset.replace("Z", "+00:00"))
                             - now).total_seconds())
        except ValueError:
            pass
    reset = response.headers.get("ratelimit-reset")
    if reset and reset.isdigit():
        return max(0.0, int(reset) - now.timestamp())
    return None


def error_text(response: httpx.Response) -> str:
    """The network's own explanation: Mastodon ``error``, XRPC ``error: message``."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("error", "message", "error_description") if body.get(k)]
        if parts:
            return ": ".join(parts)
    return response.text.strip()[:300] or response.reason_phrase


def check(response: httpx.Response, now: datetime, what: str, secrets: Iterable[str]) -> None:
    """Raise the right outcome for a non-2xx response."""
    if response.is_success:
        return
    message = redact(f"{what}: HTTP {response.status_code}: {error_text(response)}", secrets)
    if response.status_code in (408, 425, 429) or response.status_code >= 500:
        raise RetryLater(message, retry_after_seconds(response, now),
                         throttled=response.status_code == 429)
    raise PermanentFailure(message)


def request(client: httpx.Client, method: str, url: str, now: datetime, what: str,
            secrets: Iterable[str], **kwargs: object) -> httpx.Response:
    """One HTTP call with the outcome mapping; network errors mean "retry"."""
    secrets = tuple(secrets)
    try:
        response = client.request(method, url, **kwargs)  # type: ignore[arg-type]
    except httpx.TransportError as exc:
        # str(exc) names the URL at most; never the headers.
        raise RetryLater(redact(f"{what}: {type(exc).__name__}: {exc}", secrets)) from None
    check(response, now, what, secrets)
    return response
