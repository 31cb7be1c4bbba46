"""What the admin pages and ``dispatch editions`` show, read from the store.

Read-only views over the outbox, the subscribers and the social queue. Each
function is one or two grouped queries, so a page costs the same for an
edition of ten readers as for one of a million.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select

from dispatch.jobs.states import JobStatus
from dispatch.outbox.control import BOUNCE_PREFIX, EditionStatus, edition_statuses
from dispatch.store.engine import Store
from dispatch.store.schema import (
    list_members,
    outbox,
    social_posts,
    subscribers,
)


@dataclass(frozen=True, slots=True)
class EditionRow:
    """One edition with every count staff ask about."""

    status: EditionStatus
    bounced: int
    """Rows failed because the address bounced hard."""
    unsubscribed: int
    """Readers who got it and have unsubscribed since."""
    first_sent: datetime | None
    last_sent: datetime | None


def edition_rows(store: Store, since: datetime | None = None,
                 edition_id: str | None = None) -> list[EditionRow]:
    """Editions, newest first, with bounced and unsubscribed-since counts."""
    statuses = [s for s in edition_statuses(store, edition_id)
                if since is None or s.queued_at >= since]
    if not statuses:
        return []
    ids = [s.edition_id for s in statuses]
    o, s = outbox, subscribers
    with store.read() as conn:
        bounced: dict[str, int] = dict(conn.execute(
            select(o.c.edition_id, func.count())
            .where(o.c.edition_id.in_(ids), o.c.status == JobStatus.FAILED,
                   o.c.detail.like(BOUNCE_PREFIX + "%"))
            .group_by(o.c.edition_id)).all())
        left: dict[str, int] = dict(conn.execute(
            select(o.c.edition_id, func.count())
            .join(s, s.c.id == o.c.subscriber_id)
            .where(o.c.edition_id.in_(ids), o.c.status == JobStatus.SENT,
                   s.c.status == "unsubscribed", s.c.status_changed_at >= o.c.finished_at)
            .group_by(o.c.edition_id)).all())
        spans = {row[0]: (row[1], row[2]) for row in conn.execute(
            select(o.c.edition_id, func.min(o.c.finished_at), func.max(o.c.finished_at))
            .where(o.c.edition_id.in_(ids), o.c.status == JobStatus.SENT)
            .group_by(o.c.edition_id))}
    rows = [EditionRow(st, int(bounced.get(st.edition_id, 0)), int(left.get(st.edition_id, 0)),
                       *spans.get(st.edition_id, (None, None))) for st in statuses]
    rows.sort(key=lambda r: (r.status.queued_at, r.status.edition_id), reverse=True)
    return rows


def send_rate(store: Store, edition_id: str, buckets: int = 30
              ) -> tuple[datetime, timedelta, list[int]]:
    """Messages sent per time bucket, from the first send to the last.

    Returns (start, bucket width, counts); the width is at least a second.
    """
    o = outbox
    with store.read() as conn:
        first, last = conn.execute(
            select(func.min(o.c.finished_at), func.max(o.c.finished_at))
            .where(o.c.edition_id == edition_id, o.c.status == JobStatus.SENT)).one()
        if first is None:
            return datetime.min, timedelta(seconds=1), []
        width = max(timedelta(seconds=1), (last - first) / buckets)
        counts = [0] * buckets
        # Stream the instants rather than loading every row at once.
        for (at,) in conn.execute(select(o.c.finished_at)
                                  .where(o.c.edition_id == edition_id,
                                         o.c.status == JobStatus.SENT)
                                  .execution_options(yield_per=5000)):
            counts[min(buckets - 1, int((at - first) / width))] += 1
    return first, width, counts


def failure_groups(store: Store, edition_id: str, limit: int = 20) -> list[tuple[str, int]]:
    """Failed rows grouped by their reason, biggest group first."""
    o = outbox
    with store.read() as conn:
        details = conn.execute(select(o.c.detail, func.count())
                               .where(o.c.edition_id == edition_id,
                                      o.c.status == JobStatus.FAILED)
                               .group_by(o.c.detail)).all()
    grouped: Counter[str] = Counter()
    for detail, n in details:
        grouped[_reason_family(detail or "no reason recorded")] += int(n)
    return grouped.most_common(limit)


def _reason_family(detail: str) -> str:
    """A server's reply without the address it quotes, so one cause is one group."""
    words = [w for w in detail.split() if "@" not in w]
    return " ".join(words)[:200] or detail[:200]


@dataclass(frozen=True, slots=True)
class PersonRow:
    subscriber_id: int
    email: str
    name: str
    status: str
    status_reason: str | None
    created_at: datetime
    status_changed_at: datetime
    lists: tuple[str, ...]


def find_people(store: Store, query: str, limit: int = 50) -> list[PersonRow]:
    """Subscribers whose address or name contains ``query`` (any case)."""
    needle = query.strip().lower()
    if not needle:
        return []
    pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    s = subscribers
    with store.read() as conn:
        rows = conn.execute(select(s).where(or_(func.lower(s.c.email).like(pattern, escape="\\"),
                                                func.lower(s.c.name).like(pattern, escape="\\")))
                            .order_by(s.c.email).limit(limit)).all()
        people = [row._mapping for row in rows]
        lists = _lists_of(conn, [int(p["id"]) for p in people])
    return [_person(p, lists.get(int(p["id"]), ())) for p in people]


def _lists_of(conn: object, ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
    from sqlalchemy import Connection

    assert isinstance(conn, Connection)
    found: dict[int, list[str]] = {}
    if ids:
        for sid, name in conn.execute(select(list_members.c.subscriber_id,
                                             list_members.c.list_name)
                                      .where(list_members.c.subscriber_id.in_(ids))
                                      .order_by(list_members.c.list_name)):
            found.setdefault(int(sid), []).append(str(name))
    return {k: tuple(v) for k, v in found.items()}


def _person(row: object, lists: tuple[str, ...]) -> PersonRow:
    m = dict(row)  # type: ignore[call-overload]
    return PersonRow(int(m["id"]), str(m["email"]), str(m["name"] or ""), str(m["status"]),
                     m["status_reason"], m["created_at"], m["status_changed_at"], lists)


@dataclass(frozen=True, slots=True)
class GrowthWeek:
    week: datetime
    """Monday 00:00 UTC starting the week."""
    joined: int
    unsubscribed: int
    bounced: int


def list_growth(store: Store, list_name: str, now: datetime, weeks: int = 12
                ) -> list[GrowthWeek]:
    """New, unsubscribed and bounced members of one list per week, oldest first.

    "New" is when a person joined the list; unsubscribed and bounced are
    when the person's status changed, for the list's members.
    """
    monday = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0,
                                                           microsecond=0)
    first = monday - timedelta(weeks=weeks - 1)
    joined: Counter[int] = Counter()
    left: Counter[int] = Counter()
    bounced: Counter[int] = Counter()
    m, s = list_members, subscribers
    with store.read() as conn:
        for (at,) in conn.execute(select(m.c.added_at).where(m.c.list_name == list_name,
                                                             m.c.added_at >= first)):
            joined[(at - first).days // 7] += 1
        for status, at in conn.execute(
                select(s.c.status, s.c.status_changed_at)
                .join(m, and_(m.c.subscriber_id == s.c.id, m.c.list_name == list_name))
                .where(s.c.status.in_(("unsubscribed", "bounced", "complained")),
                       s.c.status_changed_at >= first)):
            (left if status == "unsubscribed" else bounced)[(at - first).days // 7] += 1
    return [GrowthWeek(first + timedelta(weeks=i), joined[i], left[i], bounced[i])
            for i in range(weeks)]


@dataclass(frozen=True, slots=True)
class SocialRow:
    slug: str
    network: str
    status: str
    text: str
    length: int
    limit: int
    created_at: datetime
    finished_at: datetime | None
    remote_url: str | None
    last_error: str | None


def social_rows(store: Store, limit: int = 200) -> list[SocialRow]:
    """Social posts, newest first, with their text and counted length."""
    t = social_posts
    with store.read() as conn:
        rows = conn.execute(select(t).order_by(t.c.id.desc()).limit(limit)).all()
    out = []
    for r in rows:
        payload = json.loads(r.payload) if r.payload else {}
        out.append(SocialRow(str(r.slug), str(r.network), str(r.status),
                             str(payload.get("text", "")), int(payload.get("length", 0)),
                             int(payload.get("limit", 0)), r.created_at, r.finished_at,
                             r.remote_url, r.last_error))
    return out
