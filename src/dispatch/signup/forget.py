"""Erasure (``dispatch subscribers forget``) and the data export
(``dispatch subscribers data``).

Forgetting deletes the subscriber row and everything that points at it:
list memberships, consent records, signup requests, bounce and complaint
reports, records of other spellings merged into it, the address in staff
audit-log entries (the entries stay), and the per-recipient outbox rows (an
edition's stored body never held personal data, so editions stay). What remains is one row in
``suppressions``: an HMAC-SHA256 of the address's identity keyed with
``DISPATCH_SECRET_KEY``. It cannot be turned back into the address without
the key, and it lets an import recognise the address and refuse it, so a CRM
export that still has the person cannot add them back without new consent.
Signing up again through the form and confirming is new consent: it lifts
the suppression.

The hash depends on the key: after changing ``DISPATCH_SECRET_KEY`` earlier
erasures are no longer recognised by imports.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from dispatch.errors import InputError
from dispatch.signup.consent import consents_of
from dispatch.store.engine import Store
from dispatch.store.schema import (
    bounce_events,
    list_members,
    outbox,
    signup_requests,
    staff_audit,
    subscriber_merges,
    subscribers,
    suppressions,
)
from dispatch.subscribers.erasure import (
    ERASED_MESSAGE,
    erased_check,
    erasure_hash,
    identity_of,
)
from dispatch.subscribers.repository import delete_subscribers

FORGOTTEN = "(a forgotten address)"


def forget(store: Store, key: bytes, email: str, now: datetime) -> bool:
    """Erase an address; True if a subscriber was deleted. The suppression
    hash is written either way, so an address never imported stays out too."""
    digest = erasure_hash(key, identity_of(email))
    with store.write() as conn:
        sid = conn.execute(select(subscribers.c.id)
                           .where(subscribers.c.email_key == identity_of(email))).scalar()
        if sid is not None:
            conn.execute(delete(outbox).where(outbox.c.subscriber_id == sid))
            delete_subscribers(conn, subscribers.c.id == sid)
        conn.execute(delete(signup_requests).where(
            func.lower(signup_requests.c.email) == identity_of(email)))
        # Spellings folded into this address when identities were merged.
        conn.execute(delete(subscriber_merges).where(
            subscriber_merges.c.email_key == identity_of(email)))
        # Reports matched to the subscriber went with it; unmatched ones name the address.
        conn.execute(delete(bounce_events).where(
            func.lower(bounce_events.c.email) == identity_of(email)))
        # The staff audit log keeps its entries (who did what, when) but not
        # the address: a viewed subscriber or a test send no longer names them.
        named = func.lower(staff_audit.c.target) == identity_of(email)
        conn.execute(update(staff_audit).where(named).values(target=FORGOTTEN))
        mentions = func.lower(staff_audit.c.detail).contains(identity_of(email), autoescape=True)
        conn.execute(update(staff_audit).where(mentions).values(detail=FORGOTTEN))
        conn.execute(store.insert_ignore(suppressions), [
            {"address_hash": digest, "reason": "erased on request", "created_at": now}])
    return sid is not None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _export(conn: Connection, key: bytes, email: str) -> dict[str, Any]:
    identity = identity_of(email)
    person = conn.execute(select(subscribers)
                          .where(subscribers.c.email_key == identity)).first()
    erased = conn.execute(select(suppressions).where(
        suppressions.c.address_hash == erasure_hash(key, identity))).first()
    data: dict[str, Any] = {"address": email, "subscriber": None}
    if person is not None:
        lists = list(conn.execute(select(list_members.c.list_name, list_members.c.added_at)
                                  .where(list_members.c.subscriber_id == person.id)
                                  .order_by(list_members.c.list_name)))
        messages = list(conn.execute(
            select(outbox.c.edition_id, outbox.c.status, outbox.c.attempts,
                   outbox.c.finished_at, outbox.c.detail)
            .where(outbox.c.subscriber_id == person.id).order_by(outbox.c.id)))
        data["subscriber"] = {
            "id": person.id, "email": person.email, "name": person.name,
            "status": person.status, "status_reason": person.status_reason,
            "status_changed_at": _iso(person.status_changed_at),
            "created_at": _iso(person.created_at), "fields": json.loads(person.fields),
            "lists": [{"list": name, "joined_at": _iso(at)} for name, at in lists],
            "consents": [c.to_json() for c in consents_of(conn, person.id)],
            "messages": [{"edition": m.edition_id, "status": m.status, "attempts": m.attempts,
                          "finished_at": _iso(m.finished_at), "detail": m.detail}
                         for m in messages],
        }
    requests = conn.execute(select(signup_requests)
                            .where(func.lower(signup_requests.c.email) == identity)
                            .order_by(signup_requests.c.id))
    data["signup_requests"] = [
        {"requested_at": _iso(r.requested_at), "lists": json.loads(r.lists),
         "method": r.method, "name": r.name, "network": r.ip,
         "wording_version": r.wording_version, "expires_at": _iso(r.expires_at),
         "outcome": r.outcome, "confirmed_at": _iso(r.confirmed_at)} for r in requests]
    b = bounce_events.c
    matched = b.subscriber_id == person.id if person is not None else b.id.is_(None)
    events = conn.execute(select(bounce_events).where(
        matched | (func.lower(b.email) == identity)).order_by(b.received_at, b.id))
    data["reports"] = [
        {"received_at": _iso(e.received_at), "kind": e.kind, "source": e.source,
         "edition": e.edition_id, "status_code": e.status_code, "diagnostic": e.diagnostic,
         "action": e.action} for e in events]
    merges = conn.execute(select(subscriber_merges)
                          .where(subscriber_merges.c.email_key == identity)
                          .order_by(subscriber_merges.c.id))
    data["merged_spellings"] = [
        {"merged_at": _iso(m.merged_at), "kept": m.kept_email, "merged": m.merged_email,
         "merged_status": m.merged_status} for m in merges]
    data["erased"] = None if erased is None else {"at": _iso(erased.created_at),
                                                  "reason": erased.reason}
    return data


def data_export(store: Store, key: bytes, email: str) -> dict[str, Any]:
    """Everything stored about one address, as JSON-ready data."""
    with store.read() as conn:
        data = _export(conn, key, email)
    if data["subscriber"] is None and not data["signup_requests"] and data["erased"] is None:
        raise InputError(f"no subscriber {email}: nothing is stored about this address")
    return data


__all__ = ["ERASED_MESSAGE", "erased_check", "erasure_hash", "forget", "identity_of"]
