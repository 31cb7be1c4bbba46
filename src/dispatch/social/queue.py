"""The social outbox: one row per (article slug, network), claimed with a lease.

::

    queued --claim(owner, lease)--> sending --ack(owner)--> sent
       ^                              |-- 429 / 5xx / network error --> queued, later
       '--- lease expired (crash) ----'-- other 4xx, too many attempts --> failed

    (could not be written) --> failed, "unfit": text_hash "", the reason and
        the fingerprint of what composing depended on in the payload; composed
        again (--> queued) once that fingerprint changes, or by hand.

Every transaction here is short; HTTP happens between them, never inside.
An ack is fenced by the lease owner, so a worker that lost its lease (it
expired and another worker took the row) cannot mark the row sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from dispatch.social.post import ComposedPost
from dispatch.store.engine import Store
from dispatch.store.schema import social_networks, social_posts

QUEUED, SENDING, SENT, FAILED = "queued", "sending", "sent", "failed"
UNFIT_HASH = ""
"""``text_hash`` of a row whose post could not be written: nothing was composed."""


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


@dataclass(frozen=True, slots=True)
class Unfit:
    """An (article, network) whose post could not be written, and why."""

    slug: str
    network: str
    reason: str
    fingerprint: str
    """What composing depended on (see :func:`dispatch.social.compose.fingerprint`)."""

    def payload(self) -> str:
        return json.dumps({"unfit": {"reason": self.reason, "fingerprint": self.fingerprint}},
                          ensure_ascii=False)


def unfit_of(row: Mapping[str, Any]) -> Unfit | None:
    """The :class:`Unfit` a row records, or None for a row holding a post."""
    if row["status"] != FAILED or row["text_hash"] != UNFIT_HASH:
        return None
    try:
        data = json.loads(row["payload"])["unfit"]
        return Unfit(row["slug"], row["network"], str(data["reason"]), str(data["fingerprint"]))
    except (ValueError, KeyError, TypeError):
        return Unfit(row["slug"], row["network"], row["last_error"] or "", "")


def record_unfit(store: Store, items: Sequence[Unfit], now: datetime) -> int:
    """Remember posts that could not be written, as failed rows; rows created.

    Durable on purpose: the article is "new" only once, so a failure that
    was merely reported would be lost for good.
    """
    if not items:
        return 0
    t = social_posts
    rows = [{"slug": u.slug, "network": u.network, "text_hash": UNFIT_HASH,
             "payload": u.payload(), "status": FAILED, "attempts": 0, "created_at": now,
             "available_at": now, "finished_at": now, "last_error": u.reason[:2000]}
            for u in items]
    with store.write() as conn:
        inserted = conn.execute(store.insert_ignore(t).returning(t.c.id), rows).all()
    return len(inserted)


def unfit_rows(store: Store, networks: Sequence[str]) -> list[Unfit]:
    if not networks:
        return []
    t = social_posts
    with store.read() as conn:
        rows = conn.execute(select(t).where(
            t.c.network.in_(list(networks)), t.c.status == FAILED,
            t.c.text_hash == UNFIT_HASH).order_by(t.c.id)).all()
    return [u for u in (unfit_of(dict(r._mapping)) for r in rows) if u is not None]


def note_unfit(store: Store, item: Unfit, now: datetime) -> bool:
    """A failed row could still not be written: keep the newer reason and fingerprint."""
    t = social_posts
    with store.write() as conn:
        result = conn.execute(update(t).where(
            t.c.slug == item.slug, t.c.network == item.network, t.c.status == FAILED,
        ).values(text_hash=UNFIT_HASH, payload=item.payload(), last_error=item.reason[:2000],
                 finished_at=now))
    return bool(result.rowcount)


def requeue(store: Store, post: ComposedPost, now: datetime, *,
            only_unfit: bool = False) -> bool:
    """Put a failed (slug, network) back in the queue with ``post``; True if it was failed.

    The guard on the status makes this safe against a second caller: only
    one of them finds the row still failed.
    """
    t = social_posts
    guard = [t.c.slug == post.slug, t.c.network == post.network, t.c.status == FAILED]
    if only_unfit:
        guard.append(t.c.text_hash == UNFIT_HASH)
    with store.write() as conn:
        result = conn.execute(update(t).where(*guard).values(
            text_hash=post.text_hash, payload=json.dumps(post.to_json(), ensure_ascii=False),
            status=QUEUED, attempts=0, available_at=now, finished_at=None, last_error=None,
            remote_id=None, remote_url=None, lease_owner=None, lease_until=None))
    return bool(result.rowcount)


def remember_networks(store: Store, names: Sequence[str], now: datetime) -> dict[str, datetime]:
    """Each network's baseline: when it was first configured (``now`` if new)."""
    if not names:
        return {}
    t = social_networks
    with store.read() as conn:
        known = dict(conn.execute(select(t.c.name, t.c.first_seen_at)
                                  .where(t.c.name.in_(list(names)))).all())
    missing = [n for n in names if n not in known]
    if missing:
        with store.write() as conn:
            conn.execute(store.insert_ignore(t),
                         [{"name": n, "first_seen_at": now} for n in missing])
            # Another process may have inserted first: its time is the baseline.
            known.update(conn.execute(select(t.c.name, t.c.first_seen_at)
                                      .where(t.c.name.in_(missing))).all())
    return known


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
