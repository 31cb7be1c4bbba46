"""Every table dispatch keeps, in one MetaData.

Tables are created only by migrations (see ``migrations.py``), never by
``create_all``, so an existing database always has a path forward.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)

metadata = MetaData()


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend.

    SQLite keeps no offset, so a naive value read back would silently be
    "local"; storing UTC and re-attaching it keeps time a parameter we trust.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


schema_migrations = Table(
    "schema_migrations", metadata,
    Column("id", String(100), primary_key=True),
    Column("applied_at", UTCDateTime(), nullable=False),
)

# One row per article ever seen published: "newly published" means "no row
# here yet", everywhere in the system.
published_articles = Table(
    "published_articles", metadata,
    Column("slug", String(200), primary_key=True),
    Column("source", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("published_at", UTCDateTime(), nullable=False),
    Column("first_seen_at", UTCDateTime(), nullable=False),
    Column("changed_at", UTCDateTime(), nullable=False),
)

article_cache = Table(
    "article_cache", metadata,
    Column("source", Text, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("article", LargeBinary, nullable=False),
    Column("warnings", Text, nullable=False),
    # The body apart from the rest: a pass reads every row's "article" but
    # only the few bodies it renders (fifty thousand articles, bounded memory).
    Column("body", LargeBinary, nullable=False),
)

# Later stages add their tables below, each with a migration.

# --- subscribers, lists and the outbox (issue 6) ---------------------------
# Integer keys: autoincrement needs INTEGER on SQLite, BIGINT on PostgreSQL.
_Id = BigInteger().with_variant(Integer(), "sqlite")

subscribers = Table(
    "subscribers", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    # The spelling first given, used for sending; ``email_key`` is who the
    # person is (see dispatch.values.address): every lookup goes by the key,
    # so Bob@Example.com and bob@example.com are one subscriber. The key is
    # a function of the spelling and unique, so the spelling is unique too
    # without an index of its own (one fewer to write per imported row).
    Column("email", String(320), nullable=False),
    Column("email_key", String(320), nullable=False, server_default=text("''")),
    Column("name", Text, nullable=False, default=""),
    # active | unsubscribed | bounced | complained; only 'active' is ever mailed.
    Column("status", String(20), nullable=False),
    Column("fields", Text, nullable=False, default="{}"),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("status_changed_at", UTCDateTime(), nullable=False),
    Column("status_reason", Text, nullable=True),
    Index("ux_subscribers_email_key", "email_key", unique=True),
)

mailing_lists = Table(
    "mailing_lists", metadata,
    Column("name", String(100), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

# No foreign key from list_name to mailing_lists: a list is never deleted,
# and every writer of a membership calls ensure_list first in its own
# transaction. On PostgreSQL that key was a trigger run per inserted row, a
# third of a million-row import's time. The key to subscribers is declared
# for SQLite only: PostgreSQL drops it (migration subscribers_0005), as its
# check cost a million-row import another 4 s; there, every writer locks
# the people it adds (repository.held_for_membership) and delete_subscribers
# deletes their memberships, which keeps the key's guarantee.
list_members = Table(
    "list_members", metadata,
    Column("list_name", String(100), primary_key=True),
    Column("subscriber_id", _Id, ForeignKey("subscribers.id", ondelete="CASCADE"),
           primary_key=True),
    Column("added_at", UTCDateTime(), nullable=False),
    Index("ix_list_members_subscriber", "subscriber_id"),
)

# One row per queued edition; the rendered edition (Edition.to_json()) lives
# here ONCE, never in the per-recipient rows (their messages are built at
# send time from it, so the outbox grows by a few integers per reader).
editions = Table(
    "editions", metadata,
    Column("edition_id", String(200), primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("audience", Text, nullable=False),
    # sending | paused | cancelled ("complete" is derived: nothing pending)
    Column("state", String(20), nullable=False),
    Column("note", Text, nullable=True),
    Column("total", Integer, nullable=False, default=0),
    Column("skipped", Integer, nullable=False, default=0),
    Column("queued_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# One row per (edition, subscriber): the unique key is what makes queueing
# idempotent. status: queued -> sending (leased) -> sent | failed | suppressed
# | cancelled; a temporary failure goes back to queued with a later available_at.
outbox = Table(
    "outbox", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("edition_id", String(200), ForeignKey("editions.edition_id", ondelete="CASCADE"),
           nullable=False),
    Column("subscriber_id", _Id, ForeignKey("subscribers.id"), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("available_at", UTCDateTime(), nullable=False),
    Column("lease_owner", String(80), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("detail", Text, nullable=True),
    UniqueConstraint("edition_id", "subscriber_id", name="uq_outbox_edition_subscriber"),
    Index("ix_outbox_due", "available_at", "id",
          sqlite_where=text("status = 'queued'"), postgresql_where=text("status = 'queued'")),
    Index("ix_outbox_leased", "lease_until",
          sqlite_where=text("status = 'sending'"), postgresql_where=text("status = 'sending'")),
    Index("ix_outbox_edition_status", "edition_id", "status"),
    Index("ix_outbox_subscriber", "subscriber_id", "status"),
    Index("ix_outbox_finished", "finished_at"),
)

# SQLite: a message the server accepted, written down the moment it was
# (the outbox row still says "sending"). Appending here writes a page or two;
# marking the outbox row sent rewrites a page of every index on it, about
# four times the work, once per message. The batch's settle, or the reaper
# after a crash, moves these into their outbox rows (see outbox/lease.py).
outbox_sent = Table(
    "outbox_sent", metadata,
    Column("row_id", _Id, ForeignKey("outbox.id", ondelete="CASCADE"), primary_key=True),
    Column("token", String(80), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=False),
)

# One social post per (article, network), created once when the article is
# first published; the composed text is frozen here, so an edit never posts
# again. queued -> sending (leased) -> sent | failed, like the email outbox.
social_posts = Table(
    "social_posts", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("slug", String(200), nullable=False),
    Column("network", String(50), nullable=False),
    Column("text_hash", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("available_at", UTCDateTime(), nullable=False),
    Column("lease_owner", String(80), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("remote_id", Text, nullable=True),
    Column("remote_url", Text, nullable=True),
    Column("last_error", Text, nullable=True),
    UniqueConstraint("slug", "network", name="uq_social_posts_slug_network"),
    Index("ix_social_posts_due", "available_at", "id",
          sqlite_where=text("status = 'queued'"), postgresql_where=text("status = 'queued'")),
    Index("ix_social_posts_leased", "lease_until",
          sqlite_where=text("status = 'sending'"), postgresql_where=text("status = 'sending'")),
)

# When each [social.<name>] network was first configured: its baseline. The
# on-publish social stage announces only articles first seen published after
# it, so a fresh install (or a network added later) never posts the back
# catalogue; `dispatch social SLUG --queue` announces an older one by hand.
social_networks = Table(
    "social_networks", metadata,
    Column("name", String(50), primary_key=True),
    Column("first_seen_at", UTCDateTime(), nullable=False),
)

# --- scheduler (issue 8) -----------------------------------------------------
# One row per firing, written BEFORE the firing acts: the primary key is the
# "every firing happens once" guarantee (a second scheduler, a restart or a
# catch-up finds the row and does nothing). ``article`` is "" for
# calendar firings and the slug for on-publish ones, so two articles published
# at the same instant are still two firings.
# status: running -> sent | skipped | failed. A running firing is held under
# a lease (lease_owner, lease_until, attempts) like any job: a leader killed
# mid-firing leaves a lease that expires, and the next leader takes it over.
schedule_runs = Table(
    "schedule_runs", metadata,
    Column("schedule_id", String(64), primary_key=True),
    Column("fire_time", UTCDateTime(), primary_key=True),
    Column("article", String(200), primary_key=True, default=""),
    Column("status", String(20), nullable=False),
    Column("reason", Text, nullable=True),
    Column("origin", String(20), nullable=False),
    Column("window_start", UTCDateTime(), nullable=True),
    Column("window_end", UTCDateTime(), nullable=True),
    Column("edition_id", String(200), nullable=True),
    Column("articles", Text, nullable=False, default="[]"),
    Column("summary", Text, nullable=True),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("lease_owner", String(80), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("attempts", Integer, nullable=False, default=1, server_default=text("1")),
    Index("ix_schedule_runs_status", "schedule_id", "status", "fire_time"),
)

# When the scheduler first saw each schedule id (or its calendar trigger as
# now written): firings and articles from before that never fire it, so
# adding or editing a schedule never sends anything "late" at once.
schedule_state = Table(
    "schedule_state", metadata,
    Column("schedule_id", String(64), primary_key=True),
    Column("first_seen_at", UTCDateTime(), nullable=False),
    Column("trigger", Text, nullable=False, default=""),
)

# --- staff (the admin pages) ---------------------------------------------------
# Staff accounts: only an argon2 hash of the password is kept.
staff_accounts = Table(
    "staff_accounts", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

# A session is known by the SHA-256 of its cookie value, so a copy of the
# database does not hand out live sessions; the CSRF token of its forms lives
# beside it.
staff_sessions = Table(
    "staff_sessions", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("staff_id", _Id, ForeignKey("staff_accounts.id", ondelete="CASCADE"),
           nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)

# Failed logins, per account name and per client address, kept in the
# database so the limit holds across several `serve` processes.
staff_login_failures = Table(
    "staff_login_failures", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("key", String(400), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Index("ix_staff_login_failures_key", "key", "at"),
)

# Every login, logout, failed login and staff action, oldest first.
staff_audit = Table(
    "staff_audit", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(320), nullable=False),
    Column("action", String(60), nullable=False),
    Column("target", Text, nullable=False, default=""),
    Column("detail", Text, nullable=False, default=""),
    Index("ix_staff_audit_at", "at"),
)

# --- subscriber identity -----------------------------------------------------
# What the address-identity upgrade merged: one row per subscriber row folded
# into another because both spelled one address. Kept so an operator can see
# (``dispatch subscribers merges``) whose history was joined and why.
subscriber_merges = Table(
    "subscriber_merges", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("merged_at", UTCDateTime(), nullable=False),
    Column("email_key", String(320), nullable=False),
    Column("kept_id", _Id, nullable=False),
    Column("kept_email", String(320), nullable=False),
    Column("merged_id", _Id, nullable=False),
    Column("merged_email", String(320), nullable=False),
    Column("merged_status", String(20), nullable=False),
    # The status the kept subscriber ended with: the most restrictive one.
    Column("status", String(20), nullable=False),
)

# A CSV file a list is synced from, as last imported: a pass whose file has
# the same size and mtime (or, after a touch, the same hash) skips it.
subscriber_sources = Table(
    "subscriber_sources", metadata,
    Column("list_name", String(100), primary_key=True),
    Column("path", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("imported_at", UTCDateTime(), nullable=False),
)

# --- bounces, complaints and mailto unsubscribes (issue 14) -------------------
# One row per decision about a report (a DSN, an ARF complaint, a mailto
# unsubscribe, an auto-reply, a provider webhook event), with its evidence.
# (source, report_id, email) is unique, so reading the same report again (a
# move that failed after the commit, a webhook retried) never counts twice.
# kind: hard | soft | complaint | unsubscribe | autoreply | ignored | reactivated
bounce_events = Table(
    "bounce_events", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("source", String(40), nullable=False),
    Column("report_id", String(400), nullable=False),
    Column("email", String(320), nullable=False, default=""),
    Column("subscriber_id", _Id, ForeignKey("subscribers.id", ondelete="CASCADE"),
           nullable=True),
    Column("outbox_id", _Id, nullable=True),
    Column("edition_id", String(200), nullable=True),
    Column("kind", String(20), nullable=False),
    Column("status_code", String(20), nullable=True),
    Column("diagnostic", Text, nullable=True),
    Column("action", Text, nullable=False),
    UniqueConstraint("source", "report_id", "email", name="uq_bounce_events_report"),
    Index("ix_bounce_events_subscriber", "subscriber_id", "received_at"),
)

# Nonces (event ids, Mailgun tokens, SNS message ids) of webhook requests
# already accepted: the same signed request sent again is a replay.
webhook_receipts = Table(
    "webhook_receipts", metadata,
    Column("provider", String(40), primary_key=True),
    Column("nonce", String(200), primary_key=True),
    Column("received_at", UTCDateTime(), nullable=False),
    Index("ix_webhook_receipts_received", "received_at"),
)

# POP3 has no folders: the messages of a POP3 bounce mailbox are never
# deleted, and their UIDLs are remembered here instead (state: processed or
# ignored), so the next pass does not read them again.
bounce_mailbox_seen = Table(
    "bounce_mailbox_seen", metadata,
    Column("mailbox", String(400), primary_key=True),
    Column("uid", String(200), primary_key=True),
    Column("state", String(20), nullable=False),
    Column("seen_at", UTCDateTime(), nullable=False),
)

# --- signup, consent and erasure (issue 15) ----------------------------------
# One row per signup request (form or API). The request is recorded the same
# way whatever the address's state; deciding whether to mail a confirmation
# happens after the response (``processed_at``), so neither the page nor its
# timing says whether the address was known. ``nonce`` is in the signed link:
# a link only ever confirms the request it was made for.
signup_requests = Table(
    "signup_requests", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("nonce", String(32), nullable=False),
    Column("email", String(320), nullable=False),
    Column("name", Text, nullable=False, default=""),
    Column("lists", Text, nullable=False),
    Column("method", String(20), nullable=False),
    Column("wording_version", String(40), nullable=True),
    Column("wording", Text, nullable=True),
    Column("ip", String(64), nullable=True),
    Column("requested_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    # null until the sender decided; outcome: sent | skipped-known | limited | ...
    Column("processed_at", UTCDateTime(), nullable=True),
    Column("outcome", String(40), nullable=True),
    Column("confirmed_at", UTCDateTime(), nullable=True),
    Index("ix_signup_requests_open", "processed_at", "requested_at"),
    Index("ix_signup_requests_expires", "expires_at"),
)

# How and when each subscription was agreed to: one row per (subscriber,
# list) joining, kept while the subscriber exists. ``method``: form, api,
# import, cli. ``ip`` is truncated (IPv4 /24, IPv6 /48) before it is stored.
# Rows are only ever appended, and deleted with their subscriber by the
# code that deletes subscribers (``delete_subscribers``), not by a foreign
# key: on PostgreSQL its check is a trigger per row, and an import of a
# million people paid it a million times.
consents = Table(
    "consents", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("subscriber_id", _Id, nullable=False),
    Column("list_name", String(100), nullable=False),
    Column("given_at", UTCDateTime(), nullable=False),
    Column("method", String(20), nullable=False),
    Column("wording_version", String(40), nullable=True),
    Column("wording", Text, nullable=True),
    Column("ip", String(64), nullable=True),
    Column("source", Text, nullable=True),
    Column("requested_at", UTCDateTime(), nullable=True),
    Index("ix_consents_subscriber", "subscriber_id", "list_name"),
)

# Fixed-window counters shared by every `dispatch serve` process: a bucket
# is "ip:<network>" or "confirm:<keyed hash of the address>".
rate_limits = Table(
    "rate_limits", metadata,
    Column("bucket", String(120), primary_key=True),
    Column("window_start", UTCDateTime(), nullable=False),
    Column("hits", Integer, nullable=False),
)

# What is left of a forgotten address: a keyed hash of its identity, so an
# import cannot add it back without new consent.
suppressions = Table(
    "suppressions", metadata,
    Column("address_hash", String(64), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)
