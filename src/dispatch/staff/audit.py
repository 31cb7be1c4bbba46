"""The staff audit log: who did what, when, to which edition, post or person."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select

from dispatch.store.engine import Store
from dispatch.store.schema import staff_audit


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    target: str
    detail: str


def record_action(conn: Connection, at: datetime, actor: str, action: str,
                  target: str = "", detail: str = "") -> None:
    """Append one line to the log, inside the caller's transaction so the
    entry and the change it describes commit (or vanish) together."""
    conn.execute(insert(staff_audit).values(at=at, actor=actor, action=action,
                                            target=target[:2000], detail=detail[:2000]))


def audit_entries(store: Store, since: datetime | None = None,
                  limit: int | None = None) -> Sequence[AuditEntry]:
    """Oldest first; with ``limit``, the most recent ``limit`` entries."""
    query = select(staff_audit.c.at, staff_audit.c.actor, staff_audit.c.action,
                   staff_audit.c.target, staff_audit.c.detail)
    if since is not None:
        query = query.where(staff_audit.c.at >= since)
    query = query.order_by(staff_audit.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    with store.read() as conn:
        rows = conn.execute(query).all()
    return [AuditEntry(*row) for row in reversed(rows)]
