"""DKIM private keys: read from the environment, generated, and published.

The key text may hold one PEM block or two (an RSA key and an Ed25519 key,
for signing with both); each block's type is read from the key itself.
``cryptography`` (OpenSSL) reads and writes the PEM and makes the one
private-key operation per message: dkimpy's own RSA is pure Python and takes
about 15 times as long (7 ms against 0.5 ms for RSA-2048).
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispatch.dkim.options import KEY_ENV, KEY_FILE_ENV
from dispatch.errors import ConfigError, Problem

_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\s.*?-----END \1-----", re.DOTALL)
_TXT_CHUNK = 250  # a TXT character-string holds at most 255 bytes


@dataclass(frozen=True)
class SigningKey:
    """One private key, ready for dkimpy; the secret parts are kept out of repr."""

    algorithm: str
    """``rsa-sha256`` or ``ed25519-sha256``."""
    bits: int
    public_record: str
    """The DNS TXT value publishing this key's public half."""
    key: Any = field(repr=False, compare=False)
    """The ``cryptography`` private key."""

    def sign_digest(self, digest: bytes) -> bytes:
        """The b= signature of a SHA-256 header hash: RSASSA-PKCS1-v1_5 (RFC 6376
        3.3.1), or Ed25519 over the hash itself (RFC 8463 3)."""
        if self.algorithm == "ed25519-sha256":
            return bytes(self.key.sign(digest))
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, utils

        return bytes(self.key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())))


class DkimKeyError(ConfigError):
    """The configured key is missing, unreadable or of the wrong kind."""


def _problem(source: str, message: str, expected: str) -> Problem:
    return Problem(source, message, None, None, expected)


def parse_keys(pem: bytes, source: str) -> list[SigningKey]:
    """Every private key in ``pem``; raises :class:`DkimKeyError` naming ``source``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    blocks = [m.group(0) for m in _PEM.finditer(pem)]
    if not blocks:
        raise DkimKeyError([_problem(source, "no PEM private key found",
                                  "-----BEGIN PRIVATE KEY----- … (as `dispatch dkim keygen` "
                                  "writes)")])
    keys: list[SigningKey] = []
    for number, block in enumerate(blocks, 1):
        try:
            key = serialization.load_pem_private_key(block, password=None)
        except (ValueError, TypeError) as exc:
            reason = str(exc).split("\n")[0] or "not a private key"
            raise DkimKeyError([_problem(source, f"key {number} does not parse: {reason}",
                                      "an unencrypted RSA or Ed25519 private key in PEM")]
                            ) from None
        if isinstance(key, rsa.RSAPrivateKey):
            keys.append(_rsa(key))
        elif isinstance(key, ed25519.Ed25519PrivateKey):
            keys.append(_ed25519(key))
        else:
            raise DkimKeyError([_problem(source, f"key {number} is a {type(key).__name__}",
                                      "an RSA or Ed25519 private key")])
    return keys


def _rsa(key: Any) -> SigningKey:
    from cryptography.hazmat.primitives import serialization

    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    record = "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode()
    return SigningKey("rsa-sha256", key.key_size, record, key)


def _ed25519(key: Any) -> SigningKey:
    from cryptography.hazmat.primitives import serialization

    public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
    record = "v=DKIM1; k=ed25519; p=" + base64.b64encode(public).decode()
    return SigningKey("ed25519-sha256", 256, record, key)


def key_text(environ: Mapping[str, str]) -> tuple[bytes, str] | None:
    """The key's PEM text and where it came from, or None when neither variable is set."""
    text = environ.get(KEY_ENV, "").strip()
    if text:
        # Some deployment tools cannot hold line breaks: accept "\n" written out.
        return text.replace("\\n", "\n").encode(), f"${KEY_ENV}"
    path = environ.get(KEY_FILE_ENV, "").strip()
    if not path:
        return None
    try:
        return Path(path).read_bytes(), path
    except OSError as exc:
        raise DkimKeyError([_problem(f"${KEY_FILE_ENV}", f"cannot read {path}: "
                                  f"{exc.strerror or exc}", "a readable PEM key file")]
                        ) from None


def generate(algorithm: str) -> tuple[bytes, SigningKey]:
    """A new private key as PKCS#8 PEM, and the same key parsed."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    key: Any
    if algorithm == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    pem: bytes = key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
    return pem, (_rsa(key) if algorithm == "rsa" else _ed25519(key))


def write_private(path: Path, pem: bytes, *, force: bool = False) -> None:
    """Write with mode 0600 from the first byte (never readable by others, not even briefly)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file overwritten with --force keeps no wider mode
        os.write(fd, pem)
    finally:
        os.close(fd)


def zone_line(selector: str, domain: str, record: str) -> str:
    """The TXT record in zone-file syntax, split into strings of at most 250 bytes."""
    chunks = [record[i:i + _TXT_CHUNK] for i in range(0, len(record), _TXT_CHUNK)]
    quoted = " ".join(f'"{c}"' for c in chunks)
    name = f"{selector}._domainkey.{domain}."
    return f"{name} IN TXT ( {quoted} )" if len(chunks) > 1 else f"{name} IN TXT {quoted}"
