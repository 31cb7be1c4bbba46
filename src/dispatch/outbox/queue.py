"""Queueing an edition: store it once, freeze its audience, one row per recipient.

Idempotent on the edition id (an edition is sent at most once): the editions primary key decides,
inside the same transaction that writes the rows, so a second call — from a
re-run, a second scheduler or a retry — queues nothing more and reports what
the first call queued.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import Integer, String, func, insert, literal, select, update

from dispatch.errors import InputError
from dispatch.jobs.states import GroupState, JobStatus
from dispatch.store.engine import Store
from dispatch.store.schema import (
    UTCDateTime,
    editions,
    list_members,
    mailing_lists,
    outbox,
    subscribers,
)


class StorableEdition(Protocol):
    """What the outbox needs of :class:`dispatch.render.Edition`."""

    @property
    def edition_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def subject(self) -> str: ...
    def to_json(self) -> str: ...


@dataclass(frozen=True, slots=True)
class QueuedEdition:
    edition_id: str
    created: bool
    """False when the edition was already queued (nothing more was queued)."""
    queued: int
    """Rows queued: one per active subscriber in the audience, once."""
    skipped: int
    """Audience members left out because they are not active."""
    audience: tuple[str, ...]


def _members(audience: Sequence[str]) -> object:
    return select(list_members.c.subscriber_id).where(list_members.c.list_name.in_(audience))


def audience_size(store: Store, audience: Sequence[str]) -> int:
    """Active subscribers in any of the lists, each counted once (unknown lists count 0)."""
    if not audience:
        return 0
    q = select(func.count()).select_from(subscribers).where(
        subscribers.c.status == "active",
        subscribers.c.id.in_(_members(list(audience))))  # type: ignore[arg-type]
    with store.read() as conn:
        return int(conn.execute(q).scalar_one())


def queue_edition(store: Store, edition: StorableEdition, audience: Sequence[str],
                  now: datetime) -> QueuedEdition:
    """Store ``edition`` once and queue it to every active subscriber of ``audience``.

    Raises InputError for an empty audience or a list that does not exist: a
    typo must not quietly freeze an edition with nobody in it.
    """
    lists = tuple(sorted(set(audience)))
    if not lists:
        raise InputError("an audience needs at least one list")
    eid = edition.edition_id
    with store.write() as conn:
        known = set(conn.execute(select(mailing_lists.c.name)
                                 .where(mailing_lists.c.name.in_(lists))).scalars())
        missing = [name for name in lists if name not in known]
        if missing:
            raise InputError(f"no subscriber list named {', '.join(missing)}")
        created = conn.execute(
            store.insert_ignore(editions).returning(editions.c.edition_id),
            [{"edition_id": eid, "kind": edition.kind, "subject": edition.subject,
              "body": edition.to_json(), "audience": json.dumps(list(lists)),
              "state": GroupState.SENDING.value,
              "total": 0, "skipped": 0, "queued_at": now, "updated_at": now}],
        ).first() is not None
        if not created:
            row = conn.execute(select(editions.c.total, editions.c.skipped, editions.c.audience)
                               .where(editions.c.edition_id == eid)).one()
            return QueuedEdition(eid, False, row.total, row.skipped,
                                 tuple(json.loads(row.audience)))
        members = _members(lists)
        # INSERT … SELECT: the audience is frozen by the database in one
        # statement (100k rows well under a second), DISTINCT by construction
        # because each subscriber appears once in ``subscribers``.
        chosen = (select(literal(eid, String()), subscribers.c.id,
                         literal(JobStatus.QUEUED.value, String()),
                         literal(0, Integer()), literal(now, UTCDateTime()))
                  .where(subscribers.c.status == "active",
                         subscribers.c.id.in_(members))  # type: ignore[arg-type]
                  .order_by(subscribers.c.id))
        conn.execute(insert(outbox).from_select(
            ["edition_id", "subscriber_id", "status", "attempts", "available_at"], chosen))
        # rowcount of INSERT … SELECT is -1 through some drivers: count instead.
        queued = int(conn.execute(select(func.count()).select_from(outbox)
                                  .where(outbox.c.edition_id == eid)).scalar_one())
        skipped = conn.execute(select(func.count()).select_from(subscribers).where(
            subscribers.c.status != "active",
            subscribers.c.id.in_(members))).scalar_one()  # type: ignore[arg-type]
        conn.execute(update(editions).where(editions.c.edition_id == eid)
                     .values(total=queued, skipped=skipped))
    return QueuedEdition(eid, True, queued, int(skipped), lists)


def edition_json(store: Store, edition_id: str) -> str | None:
    """The stored rendered edition (no personal data: a web view can show it)."""
    with store.read() as conn:
        body = conn.execute(select(editions.c.body)
                            .where(editions.c.edition_id == edition_id)).scalar()
    return None if body is None else str(body)
