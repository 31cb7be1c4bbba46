"""Consent records: how and when each subscription was agreed to.

One row per (subscriber, list) joining: ``method`` is ``form`` or ``api``
(a confirmed double opt-in), ``preferences`` (joined on the preference page),
``import`` (a CSV file; ``source`` names it),
``cli`` (``dispatch subscribers add``) or ``unrecorded`` (memberships from
before consent records existed). A form consent keeps the exact wording the
reader saw and its version, when they asked and when they confirmed, and
their network (IPv4 /24 or IPv6 /48), never the full IP address.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, String, and_, exists, insert, literal, select

from dispatch.store.schema import UTCDateTime, consents, list_members


@dataclass(frozen=True, slots=True)
class Consent:
    list_name: str
    given_at: datetime
    method: str
    wording_version: str | None = None
    wording: str | None = None
    ip: str | None = None
    source: str | None = None
    requested_at: datetime | None = None

    def describe(self) -> str:
        """One line for ``dispatch subscribers show``."""
        parts = [f"{self.list_name}: {self.method} {self.given_at.isoformat(timespec='seconds')}"]
        if self.requested_at is not None:
            parts.append(f"asked {self.requested_at.isoformat(timespec='seconds')}")
        if self.wording_version:
            parts.append(f"wording {self.wording_version}")
        if self.ip:
            parts.append(f"network {self.ip}")
        if self.source:
            parts.append(f"from {self.source}")
        return ", ".join(parts)

    def to_json(self) -> dict[str, object]:
        return {"list": self.list_name, "given_at": self.given_at.isoformat(),
                "method": self.method, "wording_version": self.wording_version,
                "wording": self.wording, "network": self.ip, "source": self.source,
                "requested_at": None if self.requested_at is None
                else self.requested_at.isoformat()}


def record(conn: Connection, subscriber_id: int, entries: Sequence[Consent]) -> None:
    if entries:
        conn.execute(insert(consents), [
            {"subscriber_id": subscriber_id, "list_name": c.list_name, "given_at": c.given_at,
             "method": c.method, "wording_version": c.wording_version, "wording": c.wording,
             "ip": c.ip, "source": c.source, "requested_at": c.requested_at}
            for c in entries])


def record_members_without(conn: Connection, list_name: str, method: str, source: str | None,
                           now: datetime) -> None:
    """Give every member who joined ``list_name`` at ``now`` (in the caller's
    transaction) and has no consent record for it one saying they came by
    ``method`` (e.g. the import of ``source``).

    One INSERT … SELECT: bounded memory however long the list; a member who
    already has a record (a confirmed signup, an earlier import) keeps it."""
    m = list_members
    has = exists().where(and_(consents.c.subscriber_id == m.c.subscriber_id,
                              consents.c.list_name == m.c.list_name))
    conn.execute(insert(consents).from_select(
        ["subscriber_id", "list_name", "given_at", "method", "source"],
        select(m.c.subscriber_id, m.c.list_name, literal(now, UTCDateTime()),
               literal(method, String()), literal(source, String()))
        .where(m.c.list_name == list_name, m.c.added_at == now, ~has)))


def consents_of(conn: Connection, subscriber_id: int) -> list[Consent]:
    t = consents
    rows = conn.execute(select(t).where(t.c.subscriber_id == subscriber_id)
                        .order_by(t.c.given_at, t.c.id))
    return [Consent(r.list_name, r.given_at, r.method, r.wording_version, r.wording, r.ip,
                    r.source, r.requested_at) for r in rows]
