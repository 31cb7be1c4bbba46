"""The email job kind: one ``outbox`` row per (edition, reader), controlled
per edition through its ``editions`` row."""

from __future__ import annotations

from sqlalchemy import ColumnElement, select

from dispatch.jobs.kind import Group, JobKind
from dispatch.jobs.states import GroupState
from dispatch.store.schema import editions, outbox


def _edition_sending() -> tuple[ColumnElement[bool], ...]:
    # EXISTS, not edition_id IN (…): given an equality on edition_id, SQLite
    # picks the (edition, status) index and sorts every queued row of the
    # edition on each claim (O(n) per batch); this way it walks the partial
    # due index in order and stops at the batch size.
    return (select(editions.c.edition_id)
            .where(editions.c.edition_id == outbox.c.edition_id,
                   editions.c.state == GroupState.SENDING.value).exists(),)


EMAIL = JobKind("email", outbox, detail="detail",
                returning=("id", "edition_id", "subscriber_id", "attempts"),
                due=_edition_sending, group=Group(editions, key="edition_id"))
