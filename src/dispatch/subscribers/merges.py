"""What the address-identity upgrade merged (``subscriber_merges``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from dispatch.store.engine import Store
from dispatch.store.schema import subscriber_merges


@dataclass(frozen=True, slots=True)
class MergeRecord:
    merged_at: datetime
    kept_email: str
    merged_email: str
    merged_status: str
    status: str
    """The status the kept subscriber ended with."""


def merge_records(store: Store) -> list[MergeRecord]:
    t = subscriber_merges
    with store.read() as conn:
        return [MergeRecord(r.merged_at, r.kept_email, r.merged_email, r.merged_status, r.status)
                for r in conn.execute(select(t).order_by(t.c.id))]
