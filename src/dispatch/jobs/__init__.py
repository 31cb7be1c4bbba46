"""The job engine: one implementation of claim, lease, settle, retry, reap and
control, shared by every kind of work dispatch does later than it decides it.

Kinds today: ``email`` (one row per edition and reader, table ``outbox``,
controlled per edition through ``editions``), ``social`` (one row per
article and network, table ``social_posts``, controlled post by post) and
schedule firings (``schedule_runs``: claimed once by their unique key, then
held under the same kind of fenced lease, see
:mod:`dispatch.schedule.firings`). A kind is a small
:class:`~dispatch.jobs.kind.JobKind` descriptor; the engine never knows
what a job carries.

Life of a job::

    queued ──claim (lease token, lease_until)──▶ sending ──settle (fenced)──▶ sent
      ▲  ▲                                          │                         failed
      │  └──── retry / release / handback ──────────┤                         suppressed
      │                                             │                         cancelled
      └──────── reap: lease expired (worker died) ──┘
    queued ──pause──▶ paused ──resume──▶ queued        (per job, or per group)
    queued | paused ──cancel──▶ cancelled;  failed ──retry──▶ queued

Guarantees:

- a job is leased to one worker at a time (``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite);
- every write after a claim is fenced on the claim's random token, so a
  worker that lost its lease can mark nothing;
- a crash leaves a lease that expires; :func:`~dispatch.jobs.lease.reap`
  queues the job again and the spent attempt counts;
- one :class:`~dispatch.jobs.policy.RetryPolicy` decides every backoff and
  when to give up;
- transports report a :class:`~dispatch.jobs.states.ResultClass`
  (delivered, throttled, temporary, permanent, bounced, with the server's
  text); the engine acts on the class and knows no protocol codes;
- no transaction is ever open while a server is being talked to.

Emails and social posts are delivered by one loop,
:func:`dispatch.jobs.worker.work` (claim, renew, re-check, pace, send,
settle); a kind adds a small channel. Every transport has one shape
(:mod:`dispatch.jobs.transport`), and local capture is one mechanism
(:mod:`dispatch.jobs.capture`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dispatch.jobs.control import Target as Target
    from dispatch.jobs.control import TargetStatus as TargetStatus
    from dispatch.jobs.kind import Group as Group
    from dispatch.jobs.kind import JobKind as JobKind
    from dispatch.jobs.lease import JobResult as JobResult
    from dispatch.jobs.lease import new_token as new_token
    from dispatch.jobs.policy import RetryPolicy as RetryPolicy
    from dispatch.jobs.states import GroupState as GroupState
    from dispatch.jobs.states import JobStatus as JobStatus
    from dispatch.jobs.states import Outcome as Outcome
    from dispatch.jobs.states import ResultClass as ResultClass
    from dispatch.jobs.states import TransportResult as TransportResult

_WHERE = {name: module for module, names in {
    "control": ("Target", "TargetStatus"),
    "kind": ("Group", "JobKind"),
    "lease": ("JobResult", "new_token"),
    "policy": ("RetryPolicy",),
    "states": ("GroupState", "JobStatus", "Outcome", "ResultClass", "TransportResult"),
}.items() for name in names}
"""Where each name of the package lives. They are imported on first use
(PEP 562): a transport needs only ``dispatch.jobs.states``, and importing the
package for it must not load SQLAlchemy (``dispatch check`` reads the social
settings, which name every transport)."""


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"dispatch.jobs.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Group",
    "GroupState",
    "JobKind",
    "JobResult",
    "JobStatus",
    "Outcome",
    "ResultClass",
    "RetryPolicy",
    "Target",
    "TargetStatus",
    "TransportResult",
    "new_token",
]
