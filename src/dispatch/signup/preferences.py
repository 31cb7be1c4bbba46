"""What the preference page changes: public lists joined or left, the name.

Leaving a list takes effect before the next message, like unsubscribing: a
message still queued for this reader in an edition none of whose lists they
are on any more is suppressed in the same transaction (a worker already
holding it re-checks the subscriber just before sending). Joining a public
list from the preference page needs no second confirmation: the link came in
an email to this address. Unsubscribing from everything is the one
``unsubscribe`` every path uses.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update

from dispatch.errors import InputError
from dispatch.signup.consent import Consent, record
from dispatch.store.engine import Store
from dispatch.store.schema import editions, list_members, outbox, subscribers
from dispatch.subscribers.repository import ensure_list, held_for_membership
from dispatch.values.address import name_problem


@dataclass(frozen=True, slots=True)
class Reader:
    id: int
    email: str
    name: str
    status: str
    lists: frozenset[str]


def reader(store: Store, subscriber_id: int) -> Reader | None:
    with store.read() as conn:
        row = conn.execute(select(subscribers).where(subscribers.c.id == subscriber_id)).first()
        if row is None:
            return None
        lists = frozenset(conn.execute(select(list_members.c.list_name)
                                       .where(list_members.c.subscriber_id == row.id)).scalars())
    return Reader(row.id, row.email, row.name, row.status, lists)


def update_preferences(store: Store, subscriber_id: int, *, name: str, public: Collection[str],
                       chosen: Collection[str], now: datetime, network: str | None,
                       wording: tuple[str, str]) -> Reader | None:
    """Set the name and, among ``public`` lists, exactly the ``chosen`` ones."""
    if name_problem(name):
        raise InputError("the name spans several lines")
    with store.write() as conn:
        row = conn.execute(held_for_membership(
            select(subscribers.c.status, subscribers.c.name)
            .where(subscribers.c.id == subscriber_id))).first()
        if row is None or row.status != "active":
            return None
        if name != row.name:
            conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id)
                         .values(name=name))
        current = set(conn.execute(select(list_members.c.list_name)
                                   .where(list_members.c.subscriber_id == subscriber_id))
                      .scalars())
        join = [n for n in public if n in chosen and n not in current]
        leave = [n for n in public if n not in chosen and n in current]
        for list_name in join:
            ensure_list(conn, store, list_name, now)
        if join:
            conn.execute(store.insert_ignore(list_members), [
                {"list_name": n, "subscriber_id": subscriber_id, "added_at": now} for n in join])
            record(conn, subscriber_id, [Consent(n, now, "preferences", wording[1], wording[0],
                                                 network) for n in join])
        if leave:
            conn.execute(delete(list_members).where(list_members.c.subscriber_id
                                                    == subscriber_id,
                                                    list_members.c.list_name.in_(leave)))
            remaining = current.difference(leave).union(join)
            queued = conn.execute(
                select(outbox.c.id, editions.c.audience)
                .join(editions, editions.c.edition_id == outbox.c.edition_id)
                .where(outbox.c.subscriber_id == subscriber_id, outbox.c.status == "queued"))
            stale = [oid for oid, audience in queued
                     if not remaining.intersection(json.loads(audience))]
            if stale:
                conn.execute(update(outbox).where(outbox.c.id.in_(stale), outbox.c.status
                                                  == "queued")
                             .values(status="suppressed", finished_at=now,
                                     detail="left the list on the preference page"))
    return reader(store, subscriber_id)
