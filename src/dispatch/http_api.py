"""What every transport talking to an HTTP API shares: the outcome of a call,
``Retry-After``, the API's own error text, and keeping secrets out of messages.

Social networks use it today; an email provider's HTTP API (a future email
transport) would use the same. A call either returns its response or raises
one of::

    DeliveryError
    ├── RetryLater        429, 408, 425, 5xx, connection trouble: try again later
    └── PermanentFailure  any other 4xx: the API said no; record why

and :func:`classified` turns either into the job engine's
:class:`~dispatch.jobs.states.TransportResult`. Secrets never reach a
message: every text that leaves here passes through :func:`redact`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from dispatch.errors import DeliveryError
from dispatch.jobs.states import ResultClass, TransportResult

if TYPE_CHECKING:  # httpx is imported by the transports that talk HTTP, when they do
    import httpx


class RetryLater(DeliveryError):
    def __init__(self, message: str, retry_after: float | None = None, *,
                 throttled: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.throttled = throttled
        """The API said "too many requests" (429), not just "not now"."""


class PermanentFailure(DeliveryError):
    pass


def classified(exc: RetryLater | PermanentFailure) -> TransportResult:
    """A failed call as the job engine's classified result."""
    if isinstance(exc, RetryLater):
        klass = ResultClass.THROTTLED if exc.throttled else ResultClass.TEMPORARY
        return TransportResult(klass, str(exc), retry_after=exc.retry_after)
    return TransportResult(ResultClass.PERMANENT, str(exc))


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every (non-empty) secret replaced by ``***``."""
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
    """The API's own explanation: Mastodon ``error``, XRPC ``error: message``."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("error", "message", "error_description") if body.get(k)]
        if parts:
            return ": ".join(parts)
    return response.text.strip()[:300] or response.reason_phrase


_TRY_AGAIN = frozenset({408, 425, 429})
_TOO_MANY = 429


def check(response: httpx.Response, now: datetime, what: str, secrets: Iterable[str]) -> None:
    """Raise the right outcome for a non-2xx response."""
    if response.is_success:
        return
    status = response.status_code
    message = redact(f"{what}: HTTP {status}: {error_text(response)}", secrets)
    if status in _TRY_AGAIN or status >= 500:
        raise RetryLater(message, retry_after_seconds(response, now), throttled=status == _TOO_MANY)
    raise PermanentFailure(message)


def request(client: httpx.Client, method: str, url: str, now: datetime, what: str,
            secrets: Iterable[str], **kwargs: object) -> httpx.Response:
    """One HTTP call with the outcome mapping; network errors mean "retry"."""
    import httpx

    secrets = tuple(secrets)
    try:
        response = client.request(method, url, **kwargs)  # type: ignore[arg-type]
    except httpx.TransportError as exc:
        # str(exc) names the URL at most; never the headers.
        raise RetryLater(redact(f"{what}: {type(exc).__name__}: {exc}", secrets)) from None
    check(response, now, what, secrets)
    return response
