"""The upgrade that makes one address one subscriber.

Before it, ``Bob@Example.com`` and ``bob@example.com`` could be two rows.
The upgrade gives every row its identity key (see dispatch.values.address),
folds rows that share a key into the oldest one (the spelling first given),
keeps the most restrictive status among them, moves their list memberships
and outbox history over, and records each fold in ``subscriber_merges`` so
the operator can see what happened.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import Connection, bindparam, delete, func, insert, inspect, select, update

from dispatch.store import schema
from dispatch.values.address import InvalidAddress, identity_key

# Most restrictive last: a complaint outranks a bounce outranks an unsubscribe.
RANK = {"active": 0, "unsubscribed": 1, "bounced": 2, "complained": 3}
_PAGE = 5000


def key_of(email: str) -> str:
    """The identity key of a stored address; an address stored under older,
    looser rules still gets a key (lower case), so no row is left without one."""
    try:
        return identity_key(email)
    except InvalidAddress:
        return email.strip().lower()


def fill_keys(conn: Connection) -> None:
    """Give every row without a key its key, a page at a time (bounded memory)."""
    t = schema.subscribers
    last = 0
    while True:
        rows = conn.execute(select(t.c.id, t.c.email).where(t.c.id > last, t.c.email_key == "")
                            .order_by(t.c.id).limit(_PAGE)).all()
        if not rows:
            return
        conn.execute(update(t).where(t.c.id == bindparam("sid"))
                     .values(email_key=bindparam("k")),
                     [{"sid": sid, "k": key_of(email)} for sid, email in rows])
        last = rows[-1][0]


def merge_duplicates(conn: Connection) -> int:
    """Fold rows that share a key into the oldest; return how many rows were folded."""
    t = schema.subscribers
    keys = list(conn.execute(select(t.c.email_key).group_by(t.c.email_key)
                             .having(func.count() > 1)).scalars())
    folded = 0
    now = datetime.now(UTC)
    for key in keys:
        rows = conn.execute(select(t).where(t.c.email_key == key).order_by(t.c.id)).all()
        kept, others = rows[0], rows[1:]
        strictest = max(rows, key=lambda r: RANK.get(r.status, 0))
        name = next((r.name for r in rows if r.name), "")
        fields: dict[str, str] = {}
        for r in reversed(rows):  # the earlier row wins a field both have
            fields.update(json.loads(r.fields or "{}"))
        conn.execute(update(t).where(t.c.id == kept.id).values(
            name=name, fields=json.dumps(fields, sort_keys=True), status=strictest.status,
            status_reason=strictest.status_reason,
            status_changed_at=strictest.status_changed_at))
        if strictest.status != "active":
            # Nothing still waiting may reach a person who opted out under
            # another spelling.
            conn.execute(update(schema.outbox).where(
                schema.outbox.c.subscriber_id == kept.id, schema.outbox.c.status == "queued")
                .values(status="suppressed", finished_at=strictest.status_changed_at,
                        detail=f"subscriber {strictest.status}"))
        for other in others:
            _move_references(conn, other.id, kept.id)
            conn.execute(insert(schema.subscriber_merges).values(
                merged_at=now, email_key=key, kept_id=kept.id, kept_email=kept.email,
                merged_id=other.id, merged_email=other.email, merged_status=other.status,
                status=strictest.status))
            conn.execute(delete(t).where(t.c.id == other.id))
            folded += 1
    return folded


def _move_references(conn: Connection, old: int, new: int) -> None:
    lm, ob = schema.list_members, schema.outbox
    for list_name, added_at in conn.execute(select(lm.c.list_name, lm.c.added_at)
                                            .where(lm.c.subscriber_id == old)).all():
        already = conn.execute(select(lm.c.list_name).where(
            lm.c.list_name == list_name, lm.c.subscriber_id == new)).first()
        if already is None:
            conn.execute(insert(lm).values(list_name=list_name, subscriber_id=new,
                                           added_at=added_at))
    conn.execute(delete(lm).where(lm.c.subscriber_id == old))
    # One edition reaches one person once: where both spellings had a row for
    # the same edition, the kept subscriber's row stands and the other goes.
    both = select(ob.c.edition_id).where(ob.c.subscriber_id == new).scalar_subquery()
    conn.execute(delete(ob).where(ob.c.subscriber_id == old, ob.c.edition_id.in_(both)))
    conn.execute(update(ob).where(ob.c.subscriber_id == old).values(subscriber_id=new))
    # Tables added later that point at a subscriber follow the same person.
    present = set(inspect(conn).get_table_names())
    for table in schema.metadata.sorted_tables:
        if table.name in (lm.name, ob.name) or table.name not in present:
            continue
        for fk in table.foreign_keys:
            if fk.column.table is schema.subscribers:
                conn.execute(update(table).where(fk.parent == old).values({fk.parent.name: new}))


def address_identity(conn: Connection) -> None:
    """The migration step: keys for every row, duplicates folded, then unique."""
    fill_keys(conn)
    merge_duplicates(conn)
    index = next(i for i in schema.subscribers.indexes if i.name == "ux_subscribers_email_key")
    index.create(conn, checkfirst=True)
