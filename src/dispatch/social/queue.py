"""The social outbox: one row per (article slug, network), claimed with a lease.

::

    queued --claim(owner, lease)--> sending --ack(owner)--> sent
       ^                              |-- 429 / 5xx / network error --> queued, later
       '--- lease expired (crash) ----'-- other 4xx, too many attempts --> failed

Every transaction here is short; HTTP happens between them, never inside.
An ack is fenced by the lease owner, so a worker that lost its lease (it
expired and another worker took the row) cannot mark the row sent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from dispatch.social.post import ComposedPost
from dispatch.store.engine import Store
from dispatch.store.schema import social_posts

QUEUED, SENDING, SENT, FAILED = "queued", "sending", "sent", "failed"


@dataclass(frozen=True, slots=True)
class ClaimedPost:
    id: int
    slug: str
    network: str
    text_hash: str
    attempts: int
    """Including this one."""
    created_at: datetime
    post: ComposedPost

    @property
    def idempotency_key(self) -> str:
        """Stable across retries and workers, different if the text differs."""
        return f"dispatch:{self.slug}:{self.network}:{self.text_hash[:16]}"


def enqueue(store: Store, posts: Sequence[ComposedPost], now: datetime) -> int:
    """Queue posts; a (slug, network) that already has a row is left alone."""
    if not posts:
        return 0
    t = social_posts
    rows = [{"slug": p.slug, "network": p.network, "text_hash": p.text_hash,
             "payload": json.dumps(p.to_json(), ensure_ascii=False), "status": QUEUED,
             "attempts": 0, "created_at": now, "available_at": now} for p in posts]
    with store.write() as conn:
        inserted = conn.execute(store.insert_ignore(t).returning(t.c.id), rows).all()
    return len(inserted)


def claim(store: Store, owner: str, now: datetime, lease: timedelta, limit: int,
          networks: Sequence[str]) -> list[ClaimedPost]:
    """Lease up to ``limit`` due posts of ``networks`` to ``owner``.

    Due: queued with ``available_at <= now``, or sending with an expired
    lease (its worker died). PostgreSQL skips rows another worker is
    claiming; SQLite's BEGIN IMMEDIATE serialises claimers instead.
    """
    if not networks or limit <= 0:
        return []
    t = social_posts
    due = and_(t.c.network.in_(list(networks)), or_(
        and_(t.c.status == QUEUED, t.c.available_at <= now),
        and_(t.c.status == SENDING, t.c.lease_until < now),
    ))
    pick = select(t.c.id).where(due).order_by(t.c.available_at, t.c.id).limit(limit)
    if store.is_postgres:
        pick = pick.with_for_update(skip_locked=True)
    with store.write() as conn:
        ids = list(conn.execute(pick).scalars())
        if not ids:
            return []
        conn.execute(update(t).where(t.c.id.in_(ids), due).values(
            status=SENDING, lease_owner=owner, lease_until=now + lease,
            attempts=t.c.attempts + 1))
        rows = conn.execute(select(t).where(t.c.id.in_(ids), t.c.lease_owner == owner,
                                            t.c.status == SENDING)).all()
    return [ClaimedPost(r.id, r.slug, r.network, r.text_hash, r.attempts, r.created_at,
                        ComposedPost.from_json(json.loads(r.payload)))
            for r in sorted(rows, key=lambda r: r.id)]


def due_count(store: Store, now: datetime, networks: Sequence[str]) -> int:
    t = social_posts
    if not networks:
        return 0
    with store.read() as conn:
        return int(conn.execute(select(func.count()).where(
            t.c.network.in_(list(networks)), t.c.status == QUEUED, t.c.available_at <= now,
        )).scalar_one())


def _finish(store: Store, post_id: int, owner: str, **values: Any) -> bool:
    t = social_posts
    with store.write() as conn:
        result = conn.execute(update(t).where(
            t.c.id == post_id, t.c.lease_owner == owner, t.c.status == SENDING,
        ).values(lease_owner=None, lease_until=None, **values))
    return bool(result.rowcount)


def mark_sent(store: Store, post_id: int, owner: str, now: datetime,
              remote_id: str | None, remote_url: str | None) -> bool:
    return _finish(store, post_id, owner, status=SENT, finished_at=now, remote_id=remote_id,
                   remote_url=remote_url, last_error=None)


def mark_retry(store: Store, post_id: int, owner: str, available_at: datetime,
               error: str) -> bool:
    return _finish(store, post_id, owner, status=QUEUED, available_at=available_at,
                   last_error=error[:2000])


def mark_failed(store: Store, post_id: int, owner: str, now: datetime, error: str) -> bool:
    return _finish(store, post_id, owner, status=FAILED, finished_at=now,
                   last_error=error[:2000])


def release(store: Store, post_id: int, owner: str) -> bool:
    """Give a claimed row back untouched (the attempt never started)."""
    return _finish(store, post_id, owner, status=QUEUED, attempts=social_posts.c.attempts - 1)


def status_counts(store: Store) -> dict[str, int]:
    t = social_posts
    with store.read() as conn:
        rows = conn.execute(select(t.c.status, func.count()).group_by(t.c.status)).all()
    return {status: count for status, count in rows}


def posts_for(store: Store, slug: str | None = None) -> list[dict[str, Any]]:
    t = social_posts
    query = select(t).order_by(t.c.id)
    if slug is not None:
        query = query.where(t.c.slug == slug)
    with store.read() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
