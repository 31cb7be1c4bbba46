"""The social job kind: one row per (article slug, network) on the job engine.

::

    queued --claim(owner, lease)--> sending --ack(owner)--> sent
       ^                              |-- throttled / temporary --> queued, later
       '--- lease expired (crash) ----'-- permanent, too many attempts --> failed
    queued --pause--> paused --resume--> queued;  queued | paused --cancel--> cancelled

    (could not be written) --> failed, "unfit": text_hash "", the reason and
        the fingerprint of what composing depended on in the payload; composed
        again (--> queued) once that fingerprint changes, or by hand.

Claim, fenced acks, reaping and control are :mod:`dispatch.jobs`' (shared
with email); a post is controlled on its own (``slug@network``). Every
transaction here is short; HTTP happens between them, never inside. An ack
is fenced by the lease owner, so a worker that lost its lease (it expired
and another worker took the row) cannot mark the row sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, select, update

from dispatch.errors import InputError
from dispatch.jobs import control
from dispatch.jobs import lease as jobs
from dispatch.jobs.control import Target
from dispatch.jobs.kind import JobKind
from dispatch.jobs.policy import RetryPolicy
from dispatch.jobs.states import JobStatus
from dispatch.social.post import ComposedPost
from dispatch.store.engine import Store
from dispatch.store.schema import social_networks, social_posts

QUEUED, SENDING, SENT, FAILED = (JobStatus.QUEUED, JobStatus.SENDING, JobStatus.SENT,
                                 JobStatus.FAILED)


def _of_networks() -> tuple[ColumnElement[bool], ...]:
    return (social_posts.c.network.in_(bindparam("networks", expanding=True)),)


SOCIAL = JobKind("social", social_posts, detail="last_error",
                 returning=("id", "slug", "network", "text_hash", "attempts", "created_at",
                            "payload"),
                 due=_of_networks, detail_limit=2000)
MAX_BACKOFF_SECONDS = 6 * 3600.0


def policy_for(max_attempts: int, backoff_seconds: float, lease_seconds: float) -> RetryPolicy:
    """The engine's retry rule with social's settings: no jitter (a handful of
    posts, whose next try people read off the queue), at most six hours."""
    return RetryPolicy(max_attempts=max_attempts, base_seconds=backoff_seconds,
                       max_seconds=MAX_BACKOFF_SECONDS, lease_seconds=lease_seconds,
                       jitter=False)


def target(store: Store, name: str) -> Target:
    """``slug@network`` as a control target; InputError if no such post."""
    slug, at, network = name.partition("@")
    if not at or not slug or not network:
        raise InputError(f"{name!r} is not a social post: write SLUG@NETWORK")
    t = social_posts
    where = (t.c.slug == slug) & (t.c.network == network)
    with store.read() as conn:
        if conn.execute(select(t.c.id).where(where)).first() is None:
            raise InputError(f"no social post {name!r} (see `dispatch queue`)")
    return Target(SOCIAL, name, where)
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


@dataclass(frozen=True, slots=True)
class OutgoingPost:
    """What a social transport carries: the claimed post, and the time of
    the attempt (for Retry-After dates, timestamps and signatures)."""

    claimed: ClaimedPost
    now: datetime


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


def pause(store: Store, name: str, now: datetime) -> bool:
    """Hold a waiting post (``slug@network``); a post being sent finishes."""
    return control.pause(store, target(store, name), now)


def resume(store: Store, name: str, now: datetime) -> bool:
    return control.resume(store, target(store, name), now)


def cancel(store: Store, name: str, now: datetime) -> int:
    return control.cancel(store, target(store, name), now, "post cancelled")


def retry_failed(store: Store, name: str, now: datetime) -> int:
    """Queue a failed post again, as it was composed. A post that could not
    be written is refused: it has no text to send (``dispatch social SLUG
    --queue`` writes it again)."""
    found = target(store, name)
    n = control.retry(store, found, now, only=social_posts.c.text_hash != UNFIT_HASH)
    if not n:
        with store.read() as conn:
            unfit = conn.execute(select(social_posts.c.id).where(
                found.where, social_posts.c.status == FAILED,
                social_posts.c.text_hash == UNFIT_HASH)).first()
        if unfit is not None:
            slug = name.partition("@")[0]
            raise InputError(f"{name} could not be written, so there is nothing to retry; "
                             f"`dispatch social {slug} --queue` writes it again")
    return n


def post_status(store: Store, name: str) -> control.TargetStatus:
    return control.status(store, target(store, name))


def claim(store: Store, owner: str, now: datetime, lease: timedelta, limit: int,
          networks: Sequence[str], max_attempts: int = 6) -> list[ClaimedPost]:
    """Lease up to ``limit`` due posts of ``networks`` to ``owner``.

    Up to ``limit`` posts whose lease expired (their worker died) are reaped
    first, in the same transaction, so they are due again at once (one that
    already spent ``max_attempts`` fails instead); other expired leases stay
    with their stalled worker until somebody needs them. PostgreSQL skips rows another worker is
    claiming; SQLite's BEGIN IMMEDIATE serialises claimers instead.
    """
    if not networks or limit <= 0:
        return []
    reaping = RetryPolicy(max_attempts=max_attempts)
    with store.write() as conn:
        jobs.reap(conn, SOCIAL, now, reaping, limit=limit, postgres=store.is_postgres,
                  scope=(social_posts.c.network.in_(list(networks)),))
        rows = jobs.claim(conn, SOCIAL, postgres=store.is_postgres, token=owner, now=now,
                          until=now + lease, limit=limit, networks=list(networks))
    return [ClaimedPost(r.id, r.slug, r.network, r.text_hash, r.attempts, r.created_at,
                        ComposedPost.from_json(json.loads(r.payload)))
            for r in sorted(rows, key=lambda r: r.id)]


def due_count(store: Store, now: datetime, networks: Sequence[str]) -> int:
    if not networks:
        return 0
    with store.read() as conn:
        return jobs.due_count(conn, SOCIAL, now, networks=list(networks))


def settle(store: Store, owner: str, result: jobs.JobResult, now: datetime,
           policy: RetryPolicy, **values: Any) -> bool:
    """Record one post's outcome with the engine's rules; False if the lease was lost.

    ``values`` (the remote id and URL) are written with a ``sent``."""
    with store.write() as conn:
        if values:
            return bool(jobs.finish(conn, SOCIAL, owner, [result.job_id], SENT, now, None,
                                    **values))
        return bool(jobs.settle(conn, SOCIAL, owner, [result], now, policy))


def renew(store: Store, owner: str, until: datetime) -> bool:
    """Extend the lease of ``owner``'s posts; False if it was lost."""
    with store.write() as conn:
        return bool(jobs.renew(conn, SOCIAL, owner, until))


def mark_sent(store: Store, post_id: int, owner: str, now: datetime,
              remote_id: str | None, remote_url: str | None) -> bool:
    with store.write() as conn:
        return bool(jobs.finish(conn, SOCIAL, owner, [post_id], SENT, now, None,
                                remote_id=remote_id, remote_url=remote_url))


def mark_retry(store: Store, post_id: int, owner: str, available_at: datetime,
               error: str) -> bool:
    with store.write() as conn:
        return jobs.requeue(conn, SOCIAL, owner, post_id, available_at, error)


def mark_failed(store: Store, post_id: int, owner: str, now: datetime, error: str) -> bool:
    with store.write() as conn:
        return bool(jobs.finish(conn, SOCIAL, owner, [post_id], FAILED, now, error))


def release(store: Store, post_id: int, owner: str) -> bool:
    """Give a claimed row back untouched (the attempt never started)."""
    t = social_posts
    with store.write() as conn:
        return bool(conn.execute(update(t).where(
            t.c.id == post_id, t.c.lease_owner == owner, t.c.status == SENDING,
        ).values(lease_owner=None, lease_until=None, status=QUEUED,
                 attempts=t.c.attempts - 1)).rowcount)


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
