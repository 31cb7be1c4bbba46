"""A private Dovecot (IMAP and POP3 over TLS) for the mailbox tests: its own
configuration, certificate, password file and maildir in a temporary
directory, on free 127.0.0.1 ports; never /etc/dovecot or the system's ports.

The certificate is made here for 127.0.0.1 and passed to dispatch with the
mailbox URL's ``?cafile=``, so the TLS connection is verified as in
production, against a CA the test controls.
"""

from __future__ import annotations

import datetime
import ipaddress
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

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.delivery_kit import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER = "bounces"
PASSWORD = "dovecot-test-password"


def dovecot_unavailable() -> str | None:
    if not os.path.exists(DOVECOT):
        return "Dovecot is not installed (.ci/run installs dovecot-imapd and dovecot-pop3d)"
    if os.geteuid() != 0:
        return "starting a private Dovecot needs root (CI runs as root)"
    for user in ("dovecot", "dovenull", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"the {user} user does not exist (install Debian's dovecot-core)"
    return None


def self_signed(root: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = root / "cert.pem", root / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass
class Dovecot:
    root: Path
    imaps: int
    pop3s: int
    cafile: Path
    maildir: Path

    def imaps_url(self) -> str:
        return f"imaps://{USER}@127.0.0.1:{self.imaps}/INBOX?cafile={self.cafile}"

    def pop3s_url(self) -> str:
        return f"pop3s://{USER}@127.0.0.1:{self.pop3s}?cafile={self.cafile}"

    def deliver(self, name: str, raw: bytes) -> Path:
        """Put a message into the INBOX as an MDA would (tmp/, then new/)."""
        nobody = pwd.getpwnam("nobody")
        tmp = self.maildir / "tmp" / f"1764590000.{name}.dovecot-test"
        tmp.write_bytes(raw)
        os.chown(tmp, nobody.pw_uid, nobody.pw_gid)
        final = self.maildir / "new" / tmp.name
        os.replace(tmp, final)
        return final

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def private_dovecot() -> Iterator[Dovecot]:
    root = Path(tempfile.mkdtemp(prefix="dispatch-dovecot-"))
    root.chmod(0o755)
    nobody = pwd.getpwnam("nobody")
    home = root / "home" / USER
    maildir = home / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True)
    for path in (root / "home", home, maildir, *(maildir / s for s in ("tmp", "new", "cur"))):
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    cert, key = self_signed(root)
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n", encoding="utf-8")
    imaps, pop3s = free_port(), free_port()
    conf = root / "dovecot.conf"
    conf.write_text(f"""\
base_dir = {root}/run
state_dir = {root}/state
instance_name = dispatch-test-{imaps}
listen = 127.0.0.1
protocols = imap pop3
log_path = {root}/dovecot.log
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
auth_mechanisms = plain
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={nobody.pw_uid} gid={nobody.pw_gid} home={root}/home/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
protocol pop3 {{
  pop3_uidl_format = %08Xu%08Xv
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {pop3s}
    ssl = yes
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0600
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
""", encoding="utf-8")
    proc = subprocess.Popen([DOVECOT, "-F", "-c", str(conf)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        for port in (imaps, pop3s):
            while True:
                if proc.poll() is not None:
                    assert proc.stdout is not None
                    raise AssertionError(f"dovecot exited: {proc.stdout.read().decode()}"
                                         f"{(root / 'dovecot.log').read_text(errors='replace')}")
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise AssertionError("dovecot did not listen") from None
                    time.sleep(0.1)  # polling for the port
        yield Dovecot(root, imaps, pop3s, cert, maildir)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)
