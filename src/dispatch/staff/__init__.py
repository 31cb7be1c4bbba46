"""Staff accounts, their sessions and the audit log behind ``/admin/``.

Everything here takes the time as a parameter and never prints: the CLI
(``dispatch staff``) and the admin web pages are the two doors in.
"""

from dispatch.staff.accounts import (
    LoginRefused,
    StaffSession,
    add_staff,
    end_session,
    list_staff,
    log_in,
    remove_staff,
    session_for,
)
from dispatch.staff.audit import AuditEntry, audit_entries, record_action

__all__ = [
    "AuditEntry",
    "LoginRefused",
    "StaffSession",
    "add_staff",
    "audit_entries",
    "end_session",
    "list_staff",
    "log_in",
    "record_action",
    "remove_staff",
    "session_for",
]
