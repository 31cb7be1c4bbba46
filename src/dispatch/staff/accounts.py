"""Staff accounts (argon2-hashed passwords), login with a rate limit, sessions.

A session cookie holds 32 random bytes; the store keeps only their SHA-256,
so reading the database does not let anyone act as a staff member. Each
session carries its own CSRF token for the forms it is shown.

Failed logins are counted per account name and per client address over
:data:`FAILURE_WINDOW` in the database (not in memory), so the limit holds
however many ``serve`` processes share it, and a restart does not reset it.
While either count is at :data:`MAX_FAILURES`, logins for it are refused
without checking the password, with the time to wait.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, insert, select, update

from dispatch.errors import InputError
from dispatch.staff.audit import record_action
from dispatch.store.engine import Store
from dispatch.store.schema import staff_accounts, staff_login_failures, staff_sessions
from dispatch.values.address import InvalidAddress, identity_key

SESSION_LIFETIME = timedelta(hours=12)
FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES = 5
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
"""Far beyond any passphrase; a longer one would never fit through the login
form, whose body is capped (web/admin/auth.py MAX_FORM)."""

_HASHER = PasswordHasher()
# Checked against when the account does not exist, so an unknown name costs
# the same argon2 work as a wrong password and timing does not tell them apart.
_DUMMY_HASH = _HASHER.hash("not a real password: timing decoy")


@dataclass(frozen=True, slots=True)
class StaffSession:
    staff_id: int
    email: str
    csrf: str
    expires_at: datetime


class LoginRefused(Exception):
    """A login that did not succeed; ``retry_after`` is set when rate-limited."""

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _staff_email(text: str) -> str:
    try:
        # Staff log in by typing their address: any case names the account.
        return identity_key(text)
    except InvalidAddress as exc:
        raise InputError(f"{exc} (expected {exc.expected})") from None


def add_staff(store: Store, email: str, password: str, now: datetime, *,
              actor: str = "cli") -> bool:
    """Create an account or set a new password for it; True when it is new."""
    address = _staff_email(email)
    if len(password) < MIN_PASSWORD:
        raise InputError(f"the password must be at least {MIN_PASSWORD} characters long")
    if len(password) > MAX_PASSWORD:
        raise InputError(f"the password must be at most {MAX_PASSWORD} characters long "
                         f"({len(password)} given): the login form could never send it")
    hashed = _HASHER.hash(password)
    with store.write() as conn:
        found = conn.execute(select(staff_accounts.c.id)
                             .where(staff_accounts.c.email == address)).scalar()
        if found is None:
            conn.execute(insert(staff_accounts).values(email=address, password_hash=hashed,
                                                       created_at=now))
        else:
            conn.execute(update(staff_accounts).where(staff_accounts.c.id == found)
                         .values(password_hash=hashed))
            # A new password ends every session opened with the old one.
            conn.execute(delete(staff_sessions).where(staff_sessions.c.staff_id == found))
        record_action(conn, now, actor, "staff add" if found is None else "staff password",
                      address)
    return found is None


def remove_staff(store: Store, email: str, now: datetime, *, actor: str = "cli") -> bool:
    address = _staff_email(email)
    with store.write() as conn:
        found = conn.execute(select(staff_accounts.c.id)
                             .where(staff_accounts.c.email == address)).scalar()
        if found is None:
            return False
        conn.execute(delete(staff_sessions).where(staff_sessions.c.staff_id == found))
        conn.execute(delete(staff_accounts).where(staff_accounts.c.id == found))
        record_action(conn, now, actor, "staff remove", address)
    return True


def list_staff(store: Store) -> list[tuple[str, datetime]]:
    with store.read() as conn:
        rows = conn.execute(select(staff_accounts.c.email, staff_accounts.c.created_at)
                            .order_by(staff_accounts.c.email)).all()
    return [(str(email), created) for email, created in rows]


def _wait_seconds(store: Store, keys: list[str], now: datetime) -> int | None:
    """Seconds until the oldest counted failure leaves the window, if limited."""
    since = now - FAILURE_WINDOW
    with store.read() as conn:
        for key in keys:
            count, oldest = conn.execute(
                select(func.count(), func.min(staff_login_failures.c.at))
                .where(staff_login_failures.c.key == key,
                       staff_login_failures.c.at > since)).one()
            if count >= MAX_FAILURES and oldest is not None:
                return max(1, int((oldest + FAILURE_WINDOW - now).total_seconds()) + 1)
    return None


def log_in(store: Store, email: str, password: str, client: str, now: datetime
           ) -> tuple[str, StaffSession]:
    """Check the password; return the new session's cookie value and the session.

    Raises :class:`LoginRefused` with one message for an unknown account and
    a wrong password alike.
    """
    try:
        name = identity_key(email[:320])
    except InvalidAddress:
        name = email.strip().lower()[:320]  # cannot match; still counted as a failure
    keys = [f"account:{name}", f"client:{client}"]
    wait = _wait_seconds(store, keys, now)
    if wait is not None:
        with store.write() as conn:
            record_action(conn, now, name or "-", "login refused",
                          detail=f"rate limited, client {client}")
        raise LoginRefused("Too many failed logins. Try again later.", retry_after=wait)
    with store.read() as conn:
        row = conn.execute(select(staff_accounts.c.id, staff_accounts.c.email,
                                  staff_accounts.c.password_hash)
                           .where(staff_accounts.c.email == name)).first()
    try:
        _HASHER.verify(row.password_hash if row is not None else _DUMMY_HASH, password)
        ok = row is not None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or row is None:
        with store.write() as conn:
            conn.execute(insert(staff_login_failures),
                         [{"key": key, "at": now} for key in keys])
            conn.execute(delete(staff_login_failures)
                         .where(staff_login_failures.c.at < now - FAILURE_WINDOW))
            record_action(conn, now, name or "-", "login failed", detail=f"client {client}")
        raise LoginRefused("That email and password do not match a staff account.")
    token = secrets.token_urlsafe(32)
    session = StaffSession(int(row.id), str(row.email), secrets.token_urlsafe(32),
                           now + SESSION_LIFETIME)
    with store.write() as conn:
        conn.execute(insert(staff_sessions).values(
            token_hash=_hash_token(token), staff_id=session.staff_id, csrf=session.csrf,
            created_at=now, expires_at=session.expires_at))
        conn.execute(delete(staff_sessions).where(staff_sessions.c.expires_at < now))
        record_action(conn, now, session.email, "login", detail=f"client {client}")
    return token, session


def session_for(store: Store, token: str | None, now: datetime) -> StaffSession | None:
    """The live session a cookie value names, or None."""
    if not token or len(token) > 100:
        return None
    with store.read() as conn:
        row = conn.execute(
            select(staff_sessions.c.staff_id, staff_accounts.c.email, staff_sessions.c.csrf,
                   staff_sessions.c.expires_at)
            .join(staff_accounts, staff_accounts.c.id == staff_sessions.c.staff_id)
            .where(staff_sessions.c.token_hash == _hash_token(token))).first()
    if row is None or row.expires_at <= now:
        return None
    return StaffSession(int(row.staff_id), str(row.email), str(row.csrf), row.expires_at)


def end_session(store: Store, token: str, now: datetime) -> None:
    session = session_for(store, token, now)
    with store.write() as conn:
        conn.execute(delete(staff_sessions)
                     .where(staff_sessions.c.token_hash == _hash_token(token)))
        if session is not None:
            record_action(conn, now, session.email, "logout")
