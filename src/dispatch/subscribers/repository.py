"""Subscribers and lists in the store.

A subscriber's ``status`` is global: once someone unsubscribed, bounced or
complained, no list and no import mails them again. Lists are named groups;
an audience is one or more list names.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar, cast

from sqlalchemy import ColumnElement, Connection, Select, delete, func, insert, select, update

from dispatch.errors import InputError
from dispatch.store.address_identity import key_of
from dispatch.store.engine import Store, chunks
from dispatch.store.schema import consents, list_members, mailing_lists, outbox, subscribers
from dispatch.subscribers.options import LIST_NAME_EXPECTED, is_list_name
from dispatch.values.address import name_problem

SubscriberStatus = Literal["active", "unsubscribed", "bounced", "complained"]
STATUSES: tuple[SubscriberStatus, ...] = ("active", "unsubscribed", "bounced", "complained")
BOUNCED_ONLY: tuple[SubscriberStatus, ...] = ("bounced",)
Q = TypeVar("Q", bound=Select[Any])


@dataclass(frozen=True, slots=True)
class Subscriber:
    id: int
    email: str
    name: str
    status: SubscriberStatus
    fields: Mapping[str, str] = field(default_factory=dict)
    status_reason: str | None = None
    status_since: datetime | None = None
    """When the status last changed (subscribed, unsubscribed, bounced …)."""


def _row_to_subscriber(row: object) -> Subscriber:
    r = cast("Mapping[str, object]", row._mapping)  # type: ignore[attr-defined]
    return Subscriber(int(cast(int, r["id"])), str(r["email"]), str(r["name"]),
                      cast(SubscriberStatus, r["status"]), json.loads(str(r["fields"])),
                      cast("str | None", r["status_reason"]),
                      cast("datetime | None", r.get("status_changed_at")))


def ensure_list(conn: Connection, store: Store, name: str, now: datetime) -> None:
    if not is_list_name(name):
        raise InputError(f"{name!r} is not a list name (expected {LIST_NAME_EXPECTED})")
    conn.execute(store.insert_ignore(mailing_lists), [{"name": name, "created_at": now}])


def list_names(store: Store) -> list[str]:
    with store.read() as conn:
        return list(conn.execute(select(mailing_lists.c.name).order_by(mailing_lists.c.name))
                    .scalars())


def unknown_lists(store: Store, audience: Iterable[str]) -> list[str]:
    known = set(list_names(store))
    return [name for name in audience if name not in known]


def list_counts(store: Store) -> dict[str, dict[str, int]]:
    """Per list: how many members have each status."""
    counts: dict[str, dict[str, int]] = {name: {} for name in list_names(store)}
    q = (select(list_members.c.list_name, subscribers.c.status, func.count())
         .join(subscribers, subscribers.c.id == list_members.c.subscriber_id)
         .group_by(list_members.c.list_name, subscribers.c.status))
    with store.read() as conn:
        for name, status, n in conn.execute(q):
            counts.setdefault(name, {})[status] = n
    return counts


def get_subscriber(store: Store, email_or_id: str | int) -> Subscriber | None:
    t = subscribers
    cond = (t.c.id == email_or_id if isinstance(email_or_id, int)
            else t.c.email_key == key_of(email_or_id))
    with store.read() as conn:
        row = conn.execute(select(t).where(cond)).first()
    return _row_to_subscriber(row) if row else None


def _selection(list_name: str | None, status: str | None) -> list[object]:
    t = subscribers
    conds: list[object] = []
    if list_name is not None:
        # A correlated EXISTS, probed through the membership key for each row
        # the email_key index yields: an IN (SELECT …) would be rebuilt for
        # every page, which is quadratic over a million members.
        lm = list_members
        conds.append(select(lm.c.subscriber_id).where(
            lm.c.list_name == list_name, lm.c.subscriber_id == t.c.id).exists())
    if status is not None:
        conds.append(t.c.status == status)
    return conds


def iter_subscribers(store: Store, *, list_name: str | None = None, status: str | None = None,
                     after: str = "", page: int = 2000) -> Iterator[Subscriber]:
    """Subscribers in identity-key order, read a page at a time: memory stays
    bounded however long the list (each page is its own short read)."""
    t = subscribers
    conds = _selection(list_name, status)
    last = after
    while True:
        q = (select(t).where(t.c.email_key > last, *conds)  # type: ignore[arg-type]
             .order_by(t.c.email_key).limit(page))
        with store.read() as conn:
            rows = conn.execute(q).all()
        if not rows:
            return
        for row in rows:
            yield _row_to_subscriber(row)
        last = rows[-1].email_key
        if len(rows) < page:
            return


def stream_rows(store: Store, *, list_name: str | None = None, status: str | None = None
                ) -> Iterator[tuple[str, str, str, str]]:
    """(email, name, status, fields JSON) of every selected subscriber in
    identity-key order, from one streaming read (rows are fetched as they are
    consumed: an export of a million holds a few thousand at a time)."""
    t = subscribers
    q = (select(t.c.email, t.c.name, t.c.status, t.c.fields)
         .where(*_selection(list_name, status))  # type: ignore[arg-type]
         .order_by(t.c.email_key))
    with store.read() as conn:
        result = conn.execution_options(stream_results=True, yield_per=5000).execute(q)
        for row in result:
            yield row[0], row[1], row[2], row[3]


def distinct_fields(store: Store, *, list_name: str | None = None,
                    status: str | None = None) -> Iterator[str]:
    """Each distinct custom-fields JSON of the selection (the database
    de-duplicates, so a million people with fifty kinds of fields give fifty)."""
    t = subscribers
    q = (select(t.c.fields).distinct()
         .where(t.c.fields != "{}", *_selection(list_name, status)))  # type: ignore[arg-type]
    with store.read() as conn:
        result = conn.execution_options(stream_results=True, yield_per=5000).execute(q)
        for row in result:
            yield str(row[0])


def iter_fields(store: Store, *, list_name: str | None = None, status: str | None = None,
                page: int = 5000) -> Iterator[str]:
    """The custom-fields JSON of every selected subscriber that has some, paged."""
    t = subscribers
    conds = _selection(list_name, status)
    last = ""
    while True:
        rows = list(_read(store, select(t.c.email_key, t.c.fields)
                          .where(t.c.email_key > last, t.c.fields != "{}",
                                 *conds)  # type: ignore[arg-type]
                          .order_by(t.c.email_key).limit(page)))
        if not rows:
            return
        for _key, fields in rows:
            yield str(fields)
        last = rows[-1][0]


def _read(store: Store, q: object) -> list[Any]:
    with store.read() as conn:
        return list(conn.execute(q))  # type: ignore[call-overload]


def is_member(store: Store, subscriber_id: int, list_name: str) -> bool:
    lm = list_members
    with store.read() as conn:
        return conn.execute(select(lm.c.subscriber_id).where(
            lm.c.list_name == list_name, lm.c.subscriber_id == subscriber_id)).first() is not None


def count_subscribers(store: Store, *, list_name: str | None = None,
                      status: str | None = None) -> int:
    lm = list_members
    if list_name is not None:
        q = (select(func.count()).select_from(lm.join(subscribers,
                                                      subscribers.c.id == lm.c.subscriber_id))
             .where(lm.c.list_name == list_name))
        if status is not None:
            q = q.where(subscribers.c.status == status)
    else:
        q = select(func.count()).select_from(subscribers).where(
            *_selection(None, status))  # type: ignore[arg-type]
    with store.read() as conn:
        return int(conn.execute(q).scalar_one())


def find_subscribers(store: Store, *, list_name: str | None = None,
                     status: str | None = None) -> list[Subscriber]:
    return list(iter_subscribers(store, list_name=list_name, status=status))


def add_subscriber(store: Store, email: str, list_name: str, now: datetime, *,
                   name: str = "", fields: Mapping[str, str] | None = None,
                   ) -> tuple[Subscriber, bool]:
    """Add ``email`` (already validated; its spelling is kept for sending) to
    ``list_name``; return (subscriber, created). Another spelling of a known
    address is that subscriber.

    An existing subscriber keeps their status: adding an unsubscribed address
    to a list does not re-activate it. A name with a line break is refused
    (it would go into the To: header), as the CSV import refuses it.
    """
    bad_name = name_problem(name)
    if bad_name:
        raise InputError(f"{email}: {bad_name} (expected a name on one line)")
    t = subscribers
    key = key_of(email)
    with store.write() as conn:
        ensure_list(conn, store, list_name, now)
        row = conn.execute(held_for_membership(select(t).where(t.c.email_key == key))).first()
        created = row is None
        if row is None:
            conn.execute(insert(t).values(email=email, email_key=key, name=name, status="active",
                                          fields=json.dumps(dict(fields or {}), sort_keys=True),
                                          created_at=now, status_changed_at=now))
        elif name and name != row.name:
            conn.execute(update(t).where(t.c.id == row.id).values(name=name))
        row = conn.execute(select(t).where(t.c.email_key == key)).one()
        conn.execute(store.insert_ignore(list_members),
                     [{"list_name": list_name, "subscriber_id": row.id, "added_at": now}])
        from dispatch.subscribers.consent import record_members_without

        record_members_without(conn, list_name, "cli", None, now)
    return _row_to_subscriber(row), created


def remove_from_list(store: Store, email: str, list_name: str) -> bool:
    with store.write() as conn:
        sid = conn.execute(select(subscribers.c.id)
                           .where(subscribers.c.email_key == key_of(email))).scalar()
        if sid is None:
            return False
        result = conn.execute(delete(list_members).where(
            list_members.c.list_name == list_name, list_members.c.subscriber_id == sid))
        return bool(result.rowcount)


def held_for_membership(query: Q) -> Q:
    """``query``, a read of subscribers someone is about to add to a list,
    locking each row it returns (FOR KEY SHARE) until the transaction ends.

    On PostgreSQL no foreign key ties a membership to its subscriber
    (``schema.list_members`` says why), so every writer of memberships reads
    the people it adds through this, and :func:`delete_subscribers` deletes
    the memberships after the people: a writer that locked a person first
    makes the delete wait for its commit (and the delete then sees its
    memberships); a writer that comes second waits for the delete and finds
    the person gone. Either way no membership outlives its subscriber, even
    under READ COMMITTED. The lock does not block updates of the status or
    name, only a delete or a change of ``email_key``. SQLite ignores it (one
    writer at a time, and the key is still there)."""
    return query.with_for_update(key_share=True, of=subscribers)


def delete_subscribers(conn: Connection, *where: ColumnElement[bool]) -> int:
    """Delete the subscribers matching ``where`` with their memberships and
    consent records, in the caller's transaction; returns how many were
    deleted. The one way a subscriber is deleted: neither consents nor (on
    PostgreSQL) memberships keep a foreign key to them. The memberships go
    after the people, in a later statement: see :func:`held_for_membership`.
    Bounce events follow by their key's ON DELETE CASCADE."""
    ids = list(conn.execute(delete(subscribers).where(*where)
                            .returning(subscribers.c.id)).scalars())
    for chunk in chunks(ids):
        conn.execute(delete(list_members).where(list_members.c.subscriber_id.in_(chunk)))
        conn.execute(delete(consents).where(consents.c.subscriber_id.in_(chunk)))
    return len(ids)


def set_status(conn: Connection, subscriber_ids: Sequence[int], status: SubscriberStatus,
               now: datetime, reason: str | None = None) -> int:
    """Move subscribers out of ``active`` (never back: see :func:`reactivate`) and
    suppress every row still waiting for them, so nothing queued is sent.

    Runs in the caller's transaction; returns how many subscribers changed.
    A bounced or complained subscriber is not downgraded to "unsubscribed";
    a complaint outranks a bounce (a bounce can be undone, a complaint not).
    """
    if status == "active":
        raise ValueError("use reactivate() to make a subscriber active again")
    changed = 0
    for ids in chunks(list(subscriber_ids)):
        allowed = (["active"] if status == "unsubscribed"
                   else ["active", "unsubscribed", "bounced"] if status == "complained"
                   else ["active", "unsubscribed"])
        changed += conn.execute(
            update(subscribers).where(subscribers.c.id.in_(ids),
                                      subscribers.c.status.in_(allowed))
            .values(status=status, status_changed_at=now, status_reason=reason)).rowcount
        # Rows already leased are left to their worker: it re-checks the
        # status just before sending and records them as suppressed itself.
        conn.execute(update(outbox).where(outbox.c.subscriber_id.in_(ids),
                                          outbox.c.status == "queued")
                     .values(status="suppressed", finished_at=now,
                             detail=f"subscriber {status}"))
    return changed


def change_status(store: Store, subscriber_ids: Sequence[int], status: SubscriberStatus,
                  now: datetime, reason: str | None = None) -> int:
    with store.write() as conn:
        return set_status(conn, subscriber_ids, status, now, reason)


def reactivate(store: Store, email: str, now: datetime, reason: str) -> bool:
    """The one deliberate way back to ``active`` (e.g. the person re-subscribed
    through a confirmed form); imports never call this."""
    if not reason:
        raise InputError("re-activating a subscriber needs a reason to record")
    with store.write() as conn:
        return bool(conn.execute(
            update(subscribers).where(subscribers.c.email_key == key_of(email),
                                      subscribers.c.status != "active")
            .values(status="active", status_changed_at=now, status_reason=reason)).rowcount)


def reactivate_subscribers(store: Store, subscriber_ids: Sequence[int], now: datetime,
                           reason: str, allowed: Collection[SubscriberStatus] = BOUNCED_ONLY
                           ) -> int:
    """Make subscribers active again, but only those whose status is in
    ``allowed`` — by default only ``bounced`` (e.g. after a relay refusal was
    taken for a bounce). An unsubscribed or complained person comes back
    only when the caller says they asked to. Returns how many changed."""
    if not reason:
        raise InputError("re-activating a subscriber needs a reason to record")
    statuses = [status for status in allowed if status != "active"]
    changed = 0
    with store.write() as conn:
        for ids in chunks(list(subscriber_ids)):
            changed += conn.execute(
                update(subscribers).where(subscribers.c.id.in_(ids),
                                          subscribers.c.status.in_(statuses))
                .values(status="active", status_changed_at=now, status_reason=reason)).rowcount
    return changed
