"""The bounce mailbox's URL (see :mod:`dispatch.bounces.mailbox` for the
forms it takes): read apart from the mailbox clients, so that ``dispatch
check`` validates it without importing imaplib, poplib and ssl."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from dispatch.errors import MailboxError

URL_HINT = "maildir:///path, imaps://user@host/INBOX or pop3s://user@host"
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True, slots=True)
class MailboxURL:
    scheme: str
    host: str
    port: int | None
    user: str
    password: str | None
    path: str
    cafile: str | None

    @property
    def shown(self) -> str:
        """The URL without its password, for reports and logs."""
        if self.scheme == "maildir":
            return f"maildir://{self.path}"
        port = f":{self.port}" if self.port else ""
        tail = f"/{self.path}" if self.scheme.startswith("imap") else ""
        return f"{self.scheme}://{self.user}@{self.host}{port}{tail}"


def parse_url(url: str, password: str | None, root: Path) -> MailboxURL:
    """Read a mailbox URL; a mistake is a MailboxError naming what was expected.

    The message never quotes the URL (errors reach logs and terminals): a
    masked copy still showed a password written where a port or a host was
    expected, or a password given instead of a URL."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    query = parse_qs(parts.query)
    cafile = query.get("cafile", [None])[0]
    if scheme == "maildir":
        raw = unquote(parts.netloc + parts.path) if not parts.netloc else None
        if raw is None:
            raise MailboxError("mailbox URL: a maildir URL has no host "
                               "(expected maildir:///absolute/path or maildir:relative/path)")
        path = Path(raw)
        path = path if path.is_absolute() else root / path
        return MailboxURL("maildir", "", None, "", None, str(path), None)
    if scheme not in ("imaps", "imap", "pop3s", "pop3"):
        raise MailboxError("mailbox URL: unknown scheme "
                           f"(expected {URL_HINT})")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        # Not the parser's words: they quote the "port", which is a piece of
        # the password when an unencoded "/" or "#" split the URL early.
        raise MailboxError("mailbox URL: the port is not a number from 0 to 65535; "
                           "a '/', '#', '?' or '@' in the password must be %-encoded "
                           f"(expected {URL_HINT})") from None
    if not host or not parts.username:
        raise MailboxError("mailbox URL: needs a user and a host "
                           f"(expected {URL_HINT})")
    if scheme in ("imap", "pop3") and host not in _LOCAL_HOSTS:
        raise MailboxError(f"mailbox URL: {scheme}:// sends the password in clear; "
                           f"use {scheme}s:// (plain is for 127.0.0.1/localhost only)")
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    secret = unquote(parts.password) if parts.password else password
    return MailboxURL(scheme, host, port, unquote(parts.username), secret, folder, cafile)


def url_problems(url: str) -> list[tuple[str, str | None]]:
    """What is wrong with the form of a mailbox URL, never quoting it (a
    missing maildir is found when it is read)."""
    try:
        parse_url(url, None, Path())
    except MailboxError as exc:
        return [(str(exc), None)]  # the message says what was expected
    return []
