"""The retry rule of the outbox is the job engine's one :class:`RetryPolicy`."""

from dispatch.jobs.policy import RetryPolicy

__all__ = ["RetryPolicy"]
