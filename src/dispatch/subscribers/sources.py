"""What the sync stage last imported from each list's CSV file."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select

from dispatch.store.engine import Store
from dispatch.store.schema import subscriber_sources


@dataclass(frozen=True, slots=True)
class SourceState:
    path: str
    size: int
    mtime_ns: int
    sha256: str


def source_state(store: Store, list_name: str) -> SourceState | None:
    t = subscriber_sources
    with store.read() as conn:
        row = conn.execute(select(t.c.path, t.c.size, t.c.mtime_ns, t.c.sha256)
                           .where(t.c.list_name == list_name)).first()
    return None if row is None else SourceState(row.path, row.size, row.mtime_ns, row.sha256)


def record_source(store: Store, list_name: str, path: str, size: int, mtime_ns: int,
                  sha256: str, now: datetime) -> None:
    """Remember the file as imported (the stat taken before reading it, so a
    write during the import makes the next pass look again)."""
    t = subscriber_sources
    with store.write() as conn:
        conn.execute(delete(t).where(t.c.list_name == list_name))
        conn.execute(insert(t).values(list_name=list_name, path=path, size=size,
                                      mtime_ns=mtime_ns, sha256=sha256, imported_at=now))
