"""The bounce mailbox, named by one URL (``DISPATCH_BOUNCE_MAILBOX``).

=================================  ==========================================
``maildir:///var/mail/bounces``    a maildir on this machine (absolute path);
                                   ``maildir:relative/path`` is read from the
                                   site folder
``imaps://user@host[:993]/INBOX``  IMAP over TLS; the folder defaults to INBOX
``pop3s://user@host[:995]``        POP3 over TLS
=================================  ==========================================

The password is ``DISPATCH_BOUNCE_PASSWORD`` (or %-encoded in the URL).
``?cafile=/path/ca.pem`` trusts a private certificate authority; plain
``imap://`` and ``pop3://`` are accepted for 127.0.0.1/localhost only.

Nothing is ever deleted. A message dispatch recognised is moved to the
processed folder (the maildir's ``.dispatch-processed`` subfolder, or the
IMAP folder ``dispatch-processed``); anything else is not touched at all —
IMAP reads use ``BODY.PEEK`` so not even the \\Seen flag changes — and is
remembered (in the ``bounce_mailbox_seen`` table: maildir file name, IMAP
UIDVALIDITY and UID) so that the next pass does not download it again. POP3
has no folders: every message stays on the server, and dispatch remembers
the UIDL of each message it has read, recognised or not, so it reads each
one once; a mail client sees them all as before.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import poplib
import re
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dispatch.bounces.mailboxurl import URL_HINT as URL_HINT
from dispatch.bounces.mailboxurl import MailboxURL as MailboxURL
from dispatch.bounces.mailboxurl import parse_url as parse_url
from dispatch.errors import MailboxError

MAX_MESSAGE = 10 * 1024 * 1024
"""A report is small; a message this large is not one, and is not read."""


@dataclass(frozen=True, slots=True)
class MailItem:
    uid: str
    raw: bytes


Remember = Callable[[str, str], None]
"""(uid, state) -> None: note a message as ``processed`` or ``ignored``."""


class Mailbox(Protocol):
    @property
    def name(self) -> str: ...
    def items(self) -> Iterator[MailItem]: ...
    def done(self, item: MailItem, recognised: bool) -> None:
        """Called once per item after its decision is committed: move it to
        the processed folder if recognised (POP3: remember it either way)."""
    def close(self) -> None: ...


def _context(cafile: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile)


# --- maildir -----------------------------------------------------------------

class MaildirBox:
    """A maildir: messages in ``new/`` and ``cur/``; recognised ones are moved
    (renamed, same file system) into ``.FOLDER/cur/`` with their flags kept."""

    def __init__(self, root: Path, folder: str, seen: set[str], remember: Remember) -> None:
        if not (root / "new").is_dir() or not (root / "cur").is_dir():
            raise MailboxError(f"{root} is not a maildir (expected new/ and cur/ in it)")
        self.root = root
        self.target = root / f".{folder}"
        self.seen = seen
        self.remember = remember

    @staticmethod
    def _key(name: str) -> str:
        # The unique part of a maildir name; a client moving the message from
        # new/ to cur/ or changing its flags only changes what follows ":2,".
        return name.split(":2,")[0]

    @property
    def name(self) -> str:
        return f"maildir://{self.root}"

    def items(self) -> Iterator[MailItem]:
        for sub in ("new", "cur"):
            for path in sorted((self.root / sub).iterdir()):
                if path.name.startswith(".") or not path.is_file():
                    continue
                if self._key(path.name) in self.seen:
                    continue
                if path.stat().st_size > MAX_MESSAGE:
                    continue
                yield MailItem(f"{sub}/{path.name}", path.read_bytes())

    def done(self, item: MailItem, recognised: bool) -> None:
        if not recognised:
            self.remember(self._key(item.uid.partition("/")[2]), "ignored")
            return
        for sub in ("tmp", "new", "cur"):
            (self.target / sub).mkdir(parents=True, exist_ok=True)
        sub, _, name = item.uid.partition("/")
        source = self.root / sub / name
        # Maildir: a message in cur/ carries its flags after ":2,"; one
        # moved out of new/ gets an empty set, as a mail client would do.
        final = name if ":2," in name else name + ":2,"
        # Another process reading the same maildir (a standby `dispatch run`)
        # may have moved it first: its decision was the same, recorded once.
        with contextlib.suppress(FileNotFoundError):
            os.replace(source, self.target / "cur" / final)

    def close(self) -> None:
        pass


# --- IMAP --------------------------------------------------------------------

def _ok(answer: tuple[str, Sequence[object]], what: str) -> list[object]:
    status, data = answer
    if status != "OK":
        raise MailboxError(f"IMAP {what} failed: {data!r}")
    return list(data)


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ImapBox:
    """One IMAP folder. Reads with ``BODY.PEEK[]`` (flags untouched), moves
    recognised messages with ``UID MOVE`` (RFC 6851), or where the server lacks
    it with ``UID COPY`` and then flagging and expunging that one UID (RFC 4315)."""

    def __init__(self, url: MailboxURL, folder: str, seen: set[str], remember: Remember,
                 timeout: float = 30) -> None:
        self.url = url
        self.target = folder
        self.seen = seen
        self.remember = remember
        try:
            if url.scheme == "imaps":
                self.conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    url.host, url.port or 993, ssl_context=_context(url.cafile), timeout=timeout)
            else:
                self.conn = imaplib.IMAP4(url.host, url.port or 143, timeout=timeout)
            self.conn.login(url.user, url.password or "")
            # Servers list MOVE and UIDPLUS only once logged in.
            answer = _ok(self.conn.capability(), "CAPABILITY")
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailboxError(f"cannot open {url.shown}: {exc}") from None
        self.capabilities = {c.upper() for c in _flat(answer).decode("ascii", "replace").split()}
        try:
            _ok(self.conn.select(_quoted(url.path)), f"SELECT {url.path}")
        except imaplib.IMAP4.error as exc:
            raise MailboxError(f"cannot open folder {url.path} of {url.shown}: {exc}") from None
        # A UID names a message only together with the folder's UIDVALIDITY.
        _, validity = self.conn.response("UIDVALIDITY")
        self.validity = _flat(list(validity or [])).decode("ascii", "replace") or "0"
        self.created = False

    @property
    def name(self) -> str:
        return self.url.shown

    def items(self) -> Iterator[MailItem]:
        data = _ok(self.conn.uid("SEARCH", "ALL"), "SEARCH")
        first = data[0] if data else b""
        uids = first.decode("ascii").split() if isinstance(first, bytes) else []
        for uid in uids:
            if f"{self.validity}:{uid}" in self.seen:
                continue
            size_answer = _ok(self.conn.uid("FETCH", uid, "(RFC822.SIZE)"), "FETCH SIZE")
            size = re.search(rb"RFC822\.SIZE (\d+)", _flat(size_answer))
            if size is not None and int(size.group(1)) > MAX_MESSAGE:
                continue
            answer = _ok(self.conn.uid("FETCH", uid, "(BODY.PEEK[])"), "FETCH")
            for part in answer:
                if isinstance(part, tuple) and len(part) == 2 and isinstance(part[1], bytes):
                    yield MailItem(uid, part[1])
                    break

    def _ensure_folder(self) -> None:
        if self.created:
            return
        status, _ = self.conn.create(_quoted(self.target))
        # NO [ALREADYEXISTS] is fine: the folder is there from an earlier run.
        self.created = True
        del status

    def done(self, item: MailItem, recognised: bool) -> None:
        if not recognised:
            self.remember(f"{self.validity}:{item.uid}", "ignored")
            return
        self._ensure_folder()
        capabilities = self.capabilities
        if "MOVE" in capabilities:
            _ok(self.conn.uid("MOVE", item.uid, _quoted(self.target)), "MOVE")
            return
        _ok(self.conn.uid("COPY", item.uid, _quoted(self.target)), "COPY")
        _ok(self.conn.uid("STORE", item.uid, "+FLAGS.SILENT", r"(\Deleted)"), "STORE")
        if "UIDPLUS" in capabilities:
            _ok(self.conn.uid("EXPUNGE", item.uid), "UID EXPUNGE")
        # Without UIDPLUS a plain EXPUNGE could remove other messages someone
        # flagged \Deleted: leave the flagged copy for the owner's client.

    def close(self) -> None:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            self.conn.logout()


def _flat(data: list[object]) -> bytes:
    out = b""
    for part in data:
        if isinstance(part, bytes):
            out += part
        elif isinstance(part, tuple):
            out += b"".join(p for p in part if isinstance(p, bytes))
    return out


# --- POP3 --------------------------------------------------------------------



class Pop3Box:
    """A POP3 mailbox: read-only. Never ``DELE``; every message read is
    remembered by UIDL (``processed`` or ``ignored``) through ``remember``."""

    def __init__(self, url: MailboxURL, seen: set[str], remember: Remember,
                 timeout: float = 30) -> None:
        self.url = url
        self.seen = seen
        self.remember = remember
        try:
            if url.scheme == "pop3s":
                self.conn: poplib.POP3 = poplib.POP3_SSL(
                    url.host, url.port or 995, context=_context(url.cafile), timeout=timeout)
            else:
                self.conn = poplib.POP3(url.host, url.port or 110, timeout=timeout)
            self.conn.user(url.user)
            self.conn.pass_(url.password or "")
        except (OSError, poplib.error_proto) as exc:
            raise MailboxError(f"cannot open {url.shown}: {exc}") from None

    @property
    def name(self) -> str:
        return self.url.shown

    def items(self) -> Iterator[MailItem]:
        try:
            _, listing, _ = self.conn.uidl()
            _, sizes, _ = self.conn.list()
        except poplib.error_proto as exc:
            raise MailboxError(f"{self.url.shown}: UIDL failed: {exc}") from None
        size_of = {}
        for line in sizes:
            number, _, size = line.decode("ascii", "replace").partition(" ")
            size_of[number] = int(size or 0)
        for line in listing:
            number, _, uid = line.decode("ascii", "replace").partition(" ")
            if uid in self.seen or size_of.get(number, 0) > MAX_MESSAGE:
                continue
            _, lines, _ = self.conn.retr(int(number))
            yield MailItem(uid, b"\r\n".join(lines) + b"\r\n")

    def done(self, item: MailItem, recognised: bool) -> None:
        self.remember(item.uid, "processed" if recognised else "ignored")

    def close(self) -> None:
        with contextlib.suppress(OSError, poplib.error_proto):
            self.conn.quit()  # no DELE was sent, so QUIT removes nothing


def open_mailbox(url: str, password: str | None, folder: str, root: Path, *,
                 seen: Callable[[str], set[str]] | None = None,
                 remember: Callable[[str, str, str], None] | None = None) -> Mailbox:
    parsed = parse_url(url, password, root)
    shown = parsed.shown
    known = seen(shown) if seen is not None else set()

    def keep(uid: str, state: str) -> None:
        if remember is not None:
            remember(shown, uid, state)

    if parsed.scheme == "maildir":
        return MaildirBox(Path(parsed.path), folder, known, keep)
    if parsed.scheme.startswith("imap"):
        return ImapBox(parsed, folder, known, keep)
    return Pop3Box(parsed, known, keep)
