"""A private Postfix instance for the bounce tests: its own configuration
directory, queue and mail folders in a temporary directory, listening on a
free 127.0.0.1 port, stopped and removed afterwards. It never touches
/etc/postfix, the system's queue or port 25.

Mail for ``bounces.test`` and ``readers.test`` is delivered by Postfix's
virtual(8) agent into maildirs under ``mail/``; an address of
``readers.test`` that is not in the map is accepted at RCPT time
(``smtpd_reject_unlisted_recipient = no``) and then bounced by Postfix
itself, which writes an RFC 3464 DSN to the envelope sender.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.delivery_kit import free_port

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"

MASTER_CF = """\
{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def postfix_unavailable() -> str | None:
    """Why a private Postfix cannot run here, or None."""
    if not os.path.exists(POSTFIX):
        return "Postfix is not installed (.ci/run installs Debian's postfix package)"
    if os.geteuid() != 0:
        return "starting a private Postfix instance needs root (CI runs as root)"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "the postfix user does not exist (install Debian's postfix package)"
    return None


@dataclass
class Postfix:
    root: Path
    port: int
    mail: Path

    def maildir(self, name: str) -> Path:
        return self.mail / name

    def log(self) -> str:
        path = self.root / "postfix.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_for(self, name: str, count: int, seconds: float = 90) -> list[Path]:
        """Bounded polling until ``count`` messages are in maildir ``name``/new."""
        deadline = time.monotonic() + seconds
        new = self.maildir(name) / "new"
        while True:
            found = sorted(new.iterdir()) if new.is_dir() else []
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{count} message(s) expected in {new}, found "
                                     f"{len(found)}; Postfix log:\n{self.log()[-4000:]}")
            time.sleep(0.1)  # polling the maildir, not waiting for time to pass


@contextmanager
def private_postfix(users: dict[str, str]) -> Iterator[Postfix]:
    """Start Postfix with ``users`` (address -> maildir name) as its mailboxes."""
    # Postfix's daemons run as the postfix and nobody users: the directory
    # must be traversable by them (pytest's tmp_path is private to root).
    root = Path(tempfile.mkdtemp(prefix="dispatch-postfix-"))
    root.chmod(0o755)
    conf, queue, data, mail = (root / n for n in ("conf", "queue", "data", "mail"))
    for path in (conf, queue, data, mail):
        path.mkdir()
    nobody = pwd.getpwnam("nobody")
    postfix_user = pwd.getpwnam("postfix")
    os.chown(data, postfix_user.pw_uid, postfix_user.pw_gid)
    os.chown(mail, nobody.pw_uid, nobody.pw_gid)
    port = free_port()
    mailboxes = ", ".join(f"{address}={name}/" for address, name in users.items())
    (conf / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.dispatch-test.localdomain
mydomain = dispatch-test.localdomain
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_reject_unlisted_recipient = no
local_transport = error:5.1.1 local delivery is off in this test instance
alias_maps =
alias_database =
relayhost =
default_transport = error:5.4.4 no mail leaves this test instance
virtual_mailbox_domains = bounces.test, readers.test
virtual_mailbox_base = {mail}
virtual_mailbox_maps = inline:{{ {mailboxes} }}
virtual_uid_maps = static:{nobody.pw_uid}
virtual_gid_maps = static:{nobody.pw_gid}
virtual_minimum_uid = 1
recipient_delimiter = +
maillog_file = {root}/postfix.log
maillog_file_prefixes = {root}
bounce_queue_lifetime = 0
maximal_queue_lifetime = 1h
""", encoding="utf-8")
    (conf / "master.cf").write_text(MASTER_CF.format(port=f"127.0.0.1:{port}"),
                                    encoding="utf-8")
    env = {**os.environ, "MAIL_CONFIG": str(conf)}
    started = subprocess.run([POSTFIX, "-c", str(conf), "start"], env=env,
                             capture_output=True, text=True, timeout=120)
    try:
        if started.returncode != 0:
            raise AssertionError(f"postfix start failed: {started.stdout}{started.stderr}")
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    if sock.recv(200).startswith(b"220"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"Postfix did not listen on {port}:\n"
                                     f"{(root / 'postfix.log').read_text(errors='replace')}")
            time.sleep(0.1)  # polling for the port
        yield Postfix(root, port, mail)
    finally:
        subprocess.run([POSTFIX, "-c", str(conf), "stop"], env=env, capture_output=True,
                       timeout=120)
        shutil.rmtree(root, ignore_errors=True)
