"""Double opt-in: a signup request, its confirmation email, and confirming it.

The request path does the same work whatever the address: it counts the
requester's network against its limit and records the request. Everything
that depends on the address — is it already subscribed, did it complain,
was a confirmation sent to it in the last hour, does it need a ``pending``
subscriber row — is decided by :func:`process_request`, which the web app
runs after the response has been sent (and every pass of ``dispatch run``
runs for requests a stopped server left behind). So the page and its timing
say nothing about whether an address was known.

Outcomes of processing: ``sent`` (a confirmation went out), ``known`` (the
address is active and already on every list asked for: nothing is sent),
``limited`` (a confirmation went to this address less than an hour ago, in
any process: kept in the database), ``complained`` (the address once
reported us as spam: it is not mailed), ``failed: …`` (the transport
refused; the reader can ask again).

Confirming (only by POST, see ``dispatch.web.signup``) makes the subscriber
active — a new, pending, unsubscribed or bounced address alike: this is the
one way an unsubscribed address comes back — adds the lists, records the
consent, and lifts an erasure's suppression, since this is new consent.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, delete, exists, func, insert, select, update

from dispatch.config import Settings
from dispatch.errors import DispatchError
from dispatch.signup import limits
from dispatch.signup.consent import Consent, record
from dispatch.signup.forget import erasure_hash, identity_of
from dispatch.signup.mail import ListChoice, confirmation_message
from dispatch.signup.tokens import confirm_token
from dispatch.store.address_identity import key_of
from dispatch.store.engine import Store
from dispatch.store.schema import (
    list_members,
    signup_requests,
    subscribers,
    suppressions,
)
from dispatch.subscribers.repository import (
    delete_subscribers,
    ensure_list,
    held_for_membership,
)

Method = Literal["form", "api"]
SIGNUP_PATHS = ("/subscribe", "/confirm/")


@dataclass(frozen=True, slots=True)
class SignupRequest:
    """A validated request, as the web app hands it over."""

    email: str
    """The sending spelling (normalised)."""
    identity: str
    """Who the address is: two spellings with one identity are one person."""
    name: str
    lists: tuple[str, ...]
    method: Method
    wording_version: str | None
    wording: str | None
    network: str | None


@dataclass(frozen=True, slots=True)
class Recorded:
    request_id: int | None
    """None when the network's limit refused the request."""
    retry_after: int = 0


def record_request(store: Store, settings: Settings, request: SignupRequest,
                   now: datetime) -> Recorded:
    """Count the network's hit and, within its limit, store the request."""
    per_ip = settings.subscribers.signups_per_ip
    with store.write() as conn:
        if request.network is not None:
            hit = limits.hit(conn, f"ip:{request.network}", per_ip, now)
            if not hit.allowed:
                return Recorded(None, hit.retry_after)
        request_id = conn.execute(insert(signup_requests).values(
            nonce=secrets.token_hex(12), email=request.email, name=request.name,
            lists=json.dumps(list(request.lists)), method=request.method,
            wording_version=request.wording_version, wording=request.wording,
            ip=request.network, requested_at=now,
            expires_at=now + settings.subscribers.confirm_delta,
        ).returning(signup_requests.c.id)).scalar_one()
    return Recorded(int(request_id))


def find_subscriber(conn: Connection, email: str, *, joining: bool = False) -> object | None:
    """The subscriber row of an address (one lookup, by identity); ``joining``
    when the caller adds them to lists (the row stays locked against a delete:
    see ``held_for_membership``)."""
    query = select(subscribers).where(subscribers.c.email_key == key_of(email))
    return conn.execute(held_for_membership(query) if joining else query).first()


def _memberships(conn: Connection, subscriber_id: int) -> set[str]:
    return set(conn.execute(select(list_members.c.list_name)
                            .where(list_members.c.subscriber_id == subscriber_id)).scalars())


@dataclass(frozen=True, slots=True)
class Processed:
    outcome: str
    message: bytes | None = None
    email: str | None = None


def _decide(conn: Connection, settings: Settings, key: bytes, base_url: str,
            request_id: int, now: datetime) -> Processed:
    r = signup_requests.c
    claimed = conn.execute(update(signup_requests)
                           .where(r.id == request_id, r.processed_at.is_(None))
                           .values(processed_at=now)).rowcount
    if not claimed:
        return Processed("already processed")
    row = conn.execute(select(signup_requests).where(r.id == request_id)).one()
    wanted = json.loads(row.lists)
    person = find_subscriber(conn, row.email)
    outcome = "sent"
    if person is not None:
        status = person.status  # type: ignore[attr-defined]
        if status == "complained":
            outcome = "complained"
        elif status == "active" and set(wanted) <= _memberships(
                conn, person.id):  # type: ignore[attr-defined]
            outcome = "known"
    if outcome == "sent":
        bucket = limits.address_bucket(key, identity_of(row.email))
        if not limits.hit(conn, bucket, 1, now).allowed:
            outcome = "limited"
    message = None
    if outcome == "sent":
        if person is None:
            conn.execute(insert(subscribers).values(
                email=row.email, email_key=key_of(row.email), name=row.name, status="pending",
                fields="{}",
                created_at=now, status_changed_at=now,
                status_reason="signed up, awaiting confirmation"))
        public = settings.subscribers.list_options()
        choices = [ListChoice(name, public[name].description if name in public else "")
                   for name in wanted]
        url = f"{base_url}/confirm/{confirm_token(key, row.id, row.nonce)}"
        message = confirmation_message(settings, email=row.email, name=row.name,
                                       confirm_url=url, lists=choices,
                                       expires=row.expires_at, date=now)
    conn.execute(update(signup_requests).where(r.id == request_id).values(outcome=outcome))
    return Processed(outcome, message, row.email)


def process_request(store: Store, settings: Settings, key: bytes, base_url: str,
                    request_id: int, now: datetime) -> str:
    """Decide and, when due, send the confirmation of one request; its outcome."""
    with store.write() as conn:
        decided = _decide(conn, settings, key, base_url, request_id, now)
    if decided.message is None or decided.email is None:
        return decided.outcome
    outcome = _send(settings, decided.email, decided.message, now)
    if outcome != "sent":
        with store.write() as conn:
            conn.execute(update(signup_requests).where(signup_requests.c.id == request_id)
                         .values(outcome=outcome[:40]))
            # Nothing reached the reader, so the address's one confirmation
            # an hour is not used up: asking again must send one.
            limits.give_back(conn, limits.address_bucket(key, identity_of(decided.email)))
    return outcome


def _send(settings: Settings, email: str, message: bytes, now: datetime) -> str:
    from dispatch.delivery.engine import make_transport
    from dispatch.delivery.settings import load_delivery_settings
    from dispatch.delivery.transport import Envelope
    from dispatch.dkim.sign import load_signer
    from dispatch.jobs.states import ResultClass

    try:
        # Signed like every newsletter; [dkim] without a usable key fails the
        # send (reported as the outcome) rather than sending it unsigned.
        signer = load_signer(settings, os.environ)
        if signer is not None:
            message = signer.sign(message, int(now.timestamp()))
        transport = make_transport(settings, load_delivery_settings(settings))
        connection = transport.open()
        try:
            result = connection.send(Envelope(settings.sender.email, email, message))
        finally:
            connection.close()
    except (DispatchError, OSError) as exc:
        return f"failed: {exc}"
    return "sent" if result.klass is ResultClass.DELIVERED else f"failed: {result.text}"


def unprocessed(store: Store, older_than: datetime) -> list[int]:
    """Requests no server processed (it stopped between response and send)."""
    r = signup_requests.c
    with store.read() as conn:
        return list(conn.execute(select(r.id).where(r.processed_at.is_(None),
                                                    r.requested_at <= older_than)
                                 .order_by(r.id)).scalars())


ConfirmState = Literal["confirmed", "already", "expired", "invalid"]


@dataclass(frozen=True, slots=True)
class Pending:
    """What the confirmation page shows before the button is pressed."""

    state: ConfirmState
    lists: tuple[str, ...] = ()


def look_up(store: Store, request_id: int, nonce: str, now: datetime) -> Pending:
    r = signup_requests.c
    with store.read() as conn:
        row = conn.execute(select(signup_requests)
                           .where(r.id == request_id, r.nonce == nonce)).first()
    if row is None:
        return Pending("expired")  # expired requests are deleted by the pass
    if row.confirmed_at is not None:
        return Pending("already", tuple(json.loads(row.lists)))
    if row.expires_at <= now or row.outcome != "sent":
        return Pending("expired")
    return Pending("confirmed", tuple(json.loads(row.lists)))


def confirm(store: Store, key: bytes, request_id: int, nonce: str, now: datetime) -> Pending:
    """Apply a confirmation (idempotent): the subscriber is active and on the lists."""
    r = signup_requests.c
    with store.write() as conn:
        row = conn.execute(select(signup_requests)
                           .where(r.id == request_id, r.nonce == nonce)).first()
        if row is None or row.expires_at <= now or row.outcome != "sent":
            return Pending("expired")
        wanted = tuple(json.loads(row.lists))
        if row.confirmed_at is not None:
            return Pending("already", wanted)
        person = find_subscriber(conn, row.email, joining=True)
        reason = f"confirmed signup ({row.method})"
        if person is None:
            sid = conn.execute(insert(subscribers).values(
                email=row.email, email_key=key_of(row.email), name=row.name, status="active",
                fields="{}",
                created_at=now, status_changed_at=now, status_reason=reason,
            ).returning(subscribers.c.id)).scalar_one()
        else:
            sid = person.id  # type: ignore[attr-defined]
            values: dict[str, object] = {}
            if person.status != "active":  # type: ignore[attr-defined]
                values.update(status="active", status_changed_at=now, status_reason=reason)
            if row.name:
                values["name"] = row.name
            if values:
                conn.execute(update(subscribers).where(subscribers.c.id == sid).values(**values))
        for name in wanted:
            ensure_list(conn, store, name, now)
        conn.execute(store.insert_ignore(list_members),
                     [{"list_name": name, "subscriber_id": sid, "added_at": now}
                      for name in wanted])
        record(conn, sid, [Consent(name, now, row.method, row.wording_version, row.wording,
                                   row.ip, None, row.requested_at) for name in wanted])
        conn.execute(update(signup_requests).where(r.id == request_id)
                     .values(confirmed_at=now))
        # New consent lifts an erasure's suppression.
        conn.execute(delete(suppressions).where(
            suppressions.c.address_hash == erasure_hash(key, identity_of(row.email))))
    return Pending("confirmed", wanted)


def expire(store: Store, now: datetime) -> tuple[int, int]:
    """Delete expired requests and the pending addresses nobody confirmed in
    time. Returns (requests, addresses) deleted."""
    r = signup_requests.c
    with store.write() as conn:
        requests = conn.execute(delete(signup_requests).where(r.expires_at <= now)).rowcount
        # Stored spellings have an ASCII domain: lower case is the identity key.
        still_open = exists().where(func.lower(r.email) == subscribers.c.email_key,
                                    r.expires_at > now)
        people = delete_subscribers(conn, subscribers.c.status == "pending", ~still_open)
        limits.forget_old(conn, now)
    return int(requests), int(people)


def requests_for(conn: Connection, email: str) -> Sequence[object]:
    return list(conn.execute(select(signup_requests).where(signup_requests.c.email == email)
                             .order_by(signup_requests.c.id)))
