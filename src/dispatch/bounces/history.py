"""The ``bounce_events`` table: every decision with its evidence, who a
report is about, and a subscriber's whole history for ``dispatch
subscribers show``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Connection, and_, delete, func, insert, select

from dispatch.bounces.model import Finding, Kind
from dispatch.store.engine import Store
from dispatch.store.schema import (
    bounce_events,
    bounce_mailbox_seen,
    editions,
    list_members,
    outbox,
    subscribers,
)
from dispatch.subscribers.repository import SubscriberStatus
from dispatch.unsubscribe import UnsubscribeToken
from dispatch.values.address import InvalidAddress, identity_key


@dataclass(frozen=True, slots=True)
class Target:
    """The subscriber (and, when known, the very message) a report is about."""

    subscriber_id: int
    email: str
    status: SubscriberStatus
    outbox_id: int | None = None
    edition_id: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One row of ``bounce_events``."""

    received_at: datetime
    source: str
    report_id: str
    email: str
    subscriber_id: int | None
    outbox_id: int | None
    edition_id: str | None
    kind: Kind
    status_code: str | None
    diagnostic: str | None
    action: str


_TARGET = (select(outbox.c.id, outbox.c.edition_id, subscribers.c.id.label("sid"),
                  subscribers.c.email, subscribers.c.status)
           .join(subscribers, subscribers.c.id == outbox.c.subscriber_id))


def _target(row: object) -> Target:
    r = row._mapping  # type: ignore[attr-defined]
    return Target(int(r["sid"]), str(r["email"]), cast(SubscriberStatus, r["status"]),
                  int(r["id"]), str(r["edition_id"]))


def resolve_rows(conn: Connection, row_ids: Sequence[int]) -> list[Target]:
    """The messages (outbox rows) that tokens name, in the order given."""
    if not row_ids:
        return []
    found = {t.outbox_id: t for t in map(_target, conn.execute(
        _TARGET.where(outbox.c.id.in_(list(row_ids)))))}
    return [found[i] for i in row_ids if i in found]


def resolve_links(conn: Connection, links: Iterable[UnsubscribeToken]) -> list[Target]:
    """Subscribers named by unsubscribe-link tokens; the message too when the
    scope is an edition the subscriber was sent."""
    targets: list[Target] = []
    for link in links:
        row = conn.execute(_TARGET.where(outbox.c.subscriber_id == link.subscriber_id,
                                         outbox.c.edition_id == link.scope)).first()
        if row is not None:
            targets.append(_target(row))
            continue
        person = conn.execute(select(subscribers.c.id, subscribers.c.email,
                                     subscribers.c.status)
                              .where(subscribers.c.id == link.subscriber_id)).first()
        if person is not None:
            targets.append(Target(int(person.id), str(person.email),
                                  cast(SubscriberStatus, person.status)))
    return targets


def resolve_email(conn: Connection, address: str) -> Target | None:
    """A subscriber by address (provider webhooks name the recipient);
    two spellings of one address are one person."""
    try:
        key = identity_key(address)
    except InvalidAddress:
        return None
    t = subscribers
    # By identity: the provider may spell the address in another case.
    row = conn.execute(select(t.c.id, t.c.email, t.c.status).where(t.c.email_key == key)).first()
    if row is None:
        return None
    return Target(int(row.id), str(row.email), cast(SubscriberStatus, row.status))


def latest_row(conn: Connection, subscriber_id: int) -> Target | None:
    """The last message sent to a subscriber (a provider event without a token)."""
    row = conn.execute(_TARGET.where(outbox.c.subscriber_id == subscriber_id,
                                     outbox.c.status == "sent")
                       .order_by(outbox.c.finished_at.desc(), outbox.c.id.desc())).first()
    return _target(row) if row is not None else None


def soft_count(conn: Connection, subscriber_id: int, now: datetime, window: timedelta,
               current_row: int | None) -> int:
    """Messages that soft-bounced within ``window`` before ``now``, since the
    last re-activation, counting the one being decided (``current_row``: its
    outbox row id, or None when the report does not name the message)."""
    e = bounce_events
    since = now - window
    last = conn.execute(select(func.max(e.c.received_at)).where(
        e.c.subscriber_id == subscriber_id, e.c.kind == Kind.REACTIVATED.value)).scalar()
    if last is not None and last > since:
        since = last
    # One message that soft-bounces on every retry (a provider reports each
    # attempt) counts once: soft bounces are counted per message.
    rows = conn.execute(select(e.c.outbox_id, e.c.report_id).where(
        e.c.subscriber_id == subscriber_id, e.c.kind == Kind.SOFT.value,
        e.c.received_at >= since, e.c.received_at <= now))
    keys = {f"row:{r.outbox_id}" if r.outbox_id is not None else f"report:{r.report_id}"
            for r in rows}
    keys.add(f"row:{current_row}" if current_row is not None else "report:(this one)")
    return len(keys)


def insert_event(conn: Connection, store: Store, event: Event) -> bool:
    """Record ``event``; False when this report was already recorded for
    this address (then nothing else must happen)."""
    values = {
        "received_at": event.received_at, "source": event.source,
        "report_id": event.report_id[:400], "email": event.email,
        "subscriber_id": event.subscriber_id, "outbox_id": event.outbox_id,
        "edition_id": event.edition_id, "kind": event.kind.value,
        "status_code": event.status_code, "diagnostic": event.diagnostic,
        "action": event.action,
    }
    return bool(conn.execute(store.insert_ignore(bounce_events).values(**values)).rowcount)


def already_recorded(conn: Connection, source: str, report_id: str, email: str) -> bool:
    e = bounce_events
    return conn.execute(select(e.c.id).where(e.c.source == source,
                                             e.c.report_id == report_id[:400],
                                             e.c.email == email)).first() is not None


def record_reactivation(store: Store, people: Iterable[tuple[int, str, str]],
                        now: datetime) -> None:
    """A re-activation (subscriber id, address, reason) is history too, and
    restarts the soft-bounce count."""
    with store.write() as conn:
        for sid, email, reason in people:
            conn.execute(insert(bounce_events).values(
                received_at=now, source="operator",
                report_id=f"reactivate:{sid}:{now.isoformat()}", email=email,
                subscriber_id=sid, kind=Kind.REACTIVATED.value, action=reason))


def finding_event(source: str, report_id: str, finding: Finding, target: Target | None,
                  now: datetime, action: str) -> Event:
    return Event(now, source, report_id, target.email if target else finding.recipient,
                 target.subscriber_id if target else None,
                 target.outbox_id if target else None, target.edition_id if target else None,
                 finding.kind, finding.status_code, finding.diagnostic, action)


# --- POP3: which messages were read already ---------------------------------

def seen_uids(store: Store, mailbox: str) -> set[str]:
    with store.read() as conn:
        return set(conn.execute(select(bounce_mailbox_seen.c.uid)
                                .where(bounce_mailbox_seen.c.mailbox == mailbox)).scalars())


def forget_ignored(store: Store, mailbox: str) -> int:
    """Forget which messages were read and not recognised, so the next
    reading looks at them again (``dispatch bounces process --rescan``)."""
    t = bounce_mailbox_seen
    with store.write() as conn:
        return int(conn.execute(delete(t).where(t.c.mailbox == mailbox,
                                                t.c.state == "ignored")).rowcount)


def remember_uid(store: Store, mailbox: str, uid: str, state: str, now: datetime) -> None:
    with store.write() as conn:
        conn.execute(store.insert_ignore(bounce_mailbox_seen).values(
            mailbox=mailbox, uid=uid, state=state, seen_at=now))


# --- a subscriber's history --------------------------------------------------

@dataclass(frozen=True, slots=True)
class Delivery:
    outbox_id: int
    edition_id: str
    subject: str
    status: str
    finished_at: datetime | None
    detail: str | None
    attempts: int


@dataclass(frozen=True, slots=True)
class History:
    subscriber_id: int
    email: str
    name: str
    status: str
    status_reason: str | None
    status_changed_at: datetime
    created_at: datetime
    lists: tuple[tuple[str, datetime], ...]
    fields: dict[str, str]
    deliveries: tuple[Delivery, ...]
    events: tuple[Event, ...]


def subscriber_history(store: Store, subscriber_id: int) -> History | None:
    t = subscribers
    with store.read() as conn:
        person = conn.execute(select(t).where(t.c.id == subscriber_id)).first()
        if person is None:
            return None
        lists = tuple((str(r.list_name), r.added_at) for r in conn.execute(
            select(list_members.c.list_name, list_members.c.added_at)
            .where(list_members.c.subscriber_id == subscriber_id)
            .order_by(list_members.c.list_name)))
        deliveries = tuple(Delivery(int(r.id), str(r.edition_id), str(r.subject or ""),
                                    str(r.status), r.finished_at, r.detail, int(r.attempts))
                           for r in conn.execute(
            select(outbox.c.id, outbox.c.edition_id, editions.c.subject, outbox.c.status,
                   outbox.c.finished_at, outbox.c.detail, outbox.c.attempts)
            .join(editions, and_(editions.c.edition_id == outbox.c.edition_id), isouter=True)
            .where(outbox.c.subscriber_id == subscriber_id)
            .order_by(outbox.c.id)))
        e = bounce_events
        events = tuple(Event(r.received_at, str(r.source), str(r.report_id), str(r.email),
                             r.subscriber_id, r.outbox_id, r.edition_id, Kind(r.kind),
                             r.status_code, r.diagnostic, str(r.action))
                       for r in conn.execute(select(e).where(e.c.subscriber_id == subscriber_id)
                                             .order_by(e.c.received_at, e.c.id)))
    return History(int(person.id), str(person.email), str(person.name), str(person.status),
                   person.status_reason, person.status_changed_at, person.created_at, lists,
                   json.loads(str(person.fields or "{}")), deliveries, events)
