"""``[delivery]`` in dispatch.toml, as written.

``delivery/settings.py`` turns it, the SMTP URL and the environment into the
:class:`~dispatch.delivery.settings.DeliverySettings` the engine runs with.
Every key is optional; an unset one takes the engine's default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator

from dispatch.delivery.registry import EMAIL_TRANSPORTS
from dispatch.errors import Problem
from dispatch.sections import CONFIG_FILE, SectionModel
from dispatch.sourcelines import SourceLines, known_name

SMTP_URL_ENV = "DISPATCH_SMTP_URL"


class DeliveryOptions(SectionModel):
    transport: str | None = None
    """Email transport: capture (default), smtp or dry-run; an smtp_url means smtp."""
    smtp_url: str | None = Field(default=None, json_schema_extra={"env": SMTP_URL_ENV,
                                                                  "secret": True})
    """smtp://user@host:587?tls=starttls&rate=10; the password in DISPATCH_SMTP_PASSWORD."""
    maildir: str | None = None
    """Where capture writes .eml files, relative to the site folder."""
    connections: int | None = Field(default=None, ge=1)
    """Concurrent SMTP connections per worker."""
    rate: float | None = Field(default=None, ge=0)
    """Messages per second across connections; 0 = no limit."""
    burst: int | None = Field(default=None, ge=0)
    """Token-bucket size; 0 = one second's worth of rate."""
    hourly_cap: int | None = Field(default=None, ge=0)
    """Messages per hour across all workers; 0 = no cap."""
    daily_cap: int | None = Field(default=None, ge=0)
    """Messages per day across all workers; 0 = no cap."""
    batch_size: int | None = Field(default=None, ge=1)
    """Rows a worker claims at a time."""
    max_attempts: int | None = Field(default=None, ge=1)
    """Temporary failures are retried with backoff this many times in all."""
    lease_seconds: float | None = Field(default=None, ge=1)
    """How long a claimed row stays with its worker."""
    retry_base_seconds: float | None = Field(default=None, ge=0)
    """First retry delay; it doubles per attempt."""
    retry_max_seconds: float | None = Field(default=None, ge=0)
    """Longest retry delay."""
    error_budget: float | None = Field(default=None, ge=0, le=1)
    """Pause an edition when this share of its finished rows failed."""
    error_budget_min: int | None = Field(default=None, ge=0)
    """…once at least this many rows have finished."""
    timeout: float | None = Field(default=None, ge=0.1)
    """Seconds to wait for the SMTP server."""

    @field_validator("transport")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        return None if value is None else known_name(value, EMAIL_TRANSPORTS)

    @classmethod
    def cross_check(cls, raw: Mapping[str, Any], lines: SourceLines) -> list[Problem]:
        # The URL is read here, with the rest of the file, rather than when
        # delivery starts: else its mistakes showed only once every other
        # one was fixed. Even when DISPATCH_SMTP_URL overrides it, a file
        # line that cannot work is reported (like any other bad key).
        url = raw.get("smtp_url")
        if not isinstance(url, str) or not url:
            return []
        # Imported here: the parser's module reads Settings, above this one.
        from dispatch.delivery.settings import url_problems

        line = lines.line(("delivery", "smtp_url"))
        return [Problem(CONFIG_FILE, message, line, "delivery.smtp_url", expected)
                for message, expected in url_problems(url)]
