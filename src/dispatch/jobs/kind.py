"""A job kind: which table holds its jobs, and what else makes one due.

The engine is shared; a kind only describes its storage. Every job table
has the same lease columns (``status``, ``attempts``, ``available_at``,
``lease_owner``, ``lease_until``, ``finished_at``) and its own payload
columns. A kind whose jobs are controlled together names a :class:`Group`
(an email edition: pausing it pauses every row at once, in one update of
one row); a kind without one is controlled job by job (a social post).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, ColumnElement, Table


@dataclass(frozen=True, slots=True, eq=False)
class Group:
    """The table whose one row controls a set of jobs (``editions`` for email)."""

    table: Table
    key: str
    """Its primary key column, also the job table's column pointing at it."""
    state: str = "state"
    note: str = "note"
    updated: str = "updated_at"

    def col(self, name: str) -> Column[Any]:
        return self.table.c[name]


@dataclass(frozen=True, slots=True, eq=False)
class JobKind:
    name: str
    """Shown to people: "email", "social"."""
    table: Table
    detail: str
    """The column holding the last reason (a server's reply, an error)."""
    returning: tuple[str, ...]
    """The columns a claim hands to the worker (``id``, ``attempts`` and the payload)."""
    due: Callable[[], tuple[ColumnElement[bool], ...]] = field(default=lambda: ())
    """Conditions beyond "queued and available" (may use bind parameters,
    given to :func:`dispatch.jobs.lease.claim` as keywords)."""
    group: Group | None = None
    detail_limit: int | None = None
    """Longest reason kept (None: as given)."""

    def col(self, name: str) -> Column[Any]:
        return self.table.c[name]

    def clip(self, detail: str | None) -> str | None:
        if detail is None or self.detail_limit is None:
            return detail
        return detail[:self.detail_limit]
