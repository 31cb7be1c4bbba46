"""One DKIM-Signature per configured key, on a message's final bytes.

Signing happens after personalisation, on exactly the bytes that are sent
(and captured), so nothing may change them afterwards. Canonicalisation is
relaxed/relaxed: it survives the header re-folding and trailing-space changes
that relays make. The signed header list is fixed; ``From`` and ``Subject``
are listed once more than they occur, which makes a second copy of either,
added on the way, break the signature.

dkimpy selects, canonicalises and hashes the headers and folds the
signature header, as its own ``DKIM.sign`` does; the private-key operation is
OpenSSL's (see ``keys.py``). The body hash (bh=) is computed here so that a
message built by :class:`~dispatch.render.MessageFactory` is never parsed
again: the edition's static pieces are canonicalised once per edition and
only the few per-recipient values per message (see :class:`BodyHasher`).
"""

from __future__ import annotations

import base64
import hashlib
import threading
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from dispatch.config import Settings
from dispatch.dkim.keys import DkimKeyError, SigningKey, key_text, parse_keys
from dispatch.dkim.options import KEY_ENV, KEY_FILE_ENV, DkimOptions
from dispatch.errors import Problem

if TYPE_CHECKING:
    from dispatch.render import MessageFactory, Recipient

SIGNED_HEADERS: tuple[bytes, ...] = (
    b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
    b"reply-to", b"list-id", b"list-unsubscribe", b"list-unsubscribe-post",
)
"""Signed when present, in this order (Reply-To only when the sender sets one)."""
OVERSIGNED: tuple[bytes, ...] = (b"from", b"subject")


def _relaxed_lines(data: bytes) -> bytes:
    """Relaxed body canonicalisation without the end-of-body rule (RFC 6376 3.4.4 a, b)."""
    from dkim.canonicalization import compress_whitespace, strip_trailing_whitespace

    canonical: bytes = compress_whitespace(strip_trailing_whitespace(data))
    return canonical


def body_hash(body: bytes) -> bytes:
    """bh= for a whole body, relaxed."""
    from dkim.canonicalization import Relaxed

    return base64.b64encode(hashlib.sha256(Relaxed.canonicalize_body(body)).digest())


class BodyHasher:
    """bh= for every message of one :class:`MessageFactory`.

    A factory's message is static pieces with per-recipient values between
    them, and each value sits on lines of its own (between quoted-printable
    soft breaks), so no run of spaces spans a seam: canonicalising the pieces
    one by one gives the same bytes as canonicalising the whole body. The
    static pieces (nearly all of the body) are canonicalised here once.
    """

    def __init__(self, factory: MessageFactory) -> None:
        from dkim.canonicalization import strip_trailing_lines

        layout = factory.layout
        slots = set(factory.slot_indices)
        at, offset = factory.body_start
        self.first = at
        self.static: dict[int, bytes] = {}
        last = len(layout) - 1
        for index in range(at, len(layout)):
            if index in slots:
                continue
            piece = layout[index][offset:] if index == at else layout[index]
            canonical = _relaxed_lines(piece)
            if index == last:
                # The body ends with a static piece (the closing boundary), so
                # the rule about trailing empty lines only concerns it.
                assert last not in slots and canonical.strip(b"\r\n")
                canonical = strip_trailing_lines(canonical)
            self.static[index] = canonical

    def digest(self, pieces: Sequence[bytes]) -> bytes:
        h = hashlib.sha256()
        static = self.static
        for index in range(self.first, len(pieces)):
            found = static.get(index)
            h.update(found if found is not None else _relaxed_lines(pieces[index]))
        return base64.b64encode(h.digest())


class Signer:
    """Signs with every configured key; safe to share between sender threads."""

    def __init__(self, keys: Sequence[SigningKey], domain: str,
                 selectors: Mapping[str, str]) -> None:
        self.keys = tuple(keys)
        self.domain = domain
        self.selectors = dict(selectors)
        self._hashers: weakref.WeakKeyDictionary[MessageFactory, BodyHasher] = (
            weakref.WeakKeyDictionary())
        self._lock = threading.Lock()  # sender threads share one signer

    def __repr__(self) -> str:
        what = ", ".join(f"{k.algorithm} s={self.selectors[k.algorithm]}" for k in self.keys)
        return f"Signer(d={self.domain}, {what}, key=***)"

    def header(self, head: bytes, bh: bytes, timestamp: int) -> bytes:
        """The DKIM-Signature header line(s) for a message whose header block is
        ``head`` (each field ending in CRLF, no blank line) and whose body hash is ``bh``."""
        import dkim
        from dkim.canonicalization import Relaxed

        headers, _ = dkim.rfc822_parse(head + b"\r\n")
        present = {name.lower() for name, _value in headers}
        include = [h for h in SIGNED_HEADERS if h in present] + list(OVERSIGNED)
        canonical = Relaxed.canonicalize_headers(headers)
        domain = self.domain.encode()
        out = b""
        for key in self.keys:
            fields = [
                (b"v", b"1"), (b"a", key.algorithm.encode()), (b"c", b"relaxed/relaxed"),
                (b"d", domain), (b"s", self.selectors[key.algorithm].encode()),
                (b"t", str(timestamp).encode()), (b"h", b" : ".join(include)),
                (b"bh", bh),
                # As dkimpy does: a placeholder makes the fold put b= on its own
                # line, so filling it in cannot move the folds before it.
                (b"b", b"0" * 60),
            ]
            value = dkim.fold(b"; ".join(b"=".join(f) for f in fields), namelen=14)
            value = dkim.RE_BTAG.sub(b"\\1", value)  # b= empty while hashing
            h = hashlib.sha256()
            dkim.hash_headers(h, Relaxed, canonical, include, (b"DKIM-Signature", b" " + value),
                              dict(fields))
            fields[-1] = (b"b", base64.b64encode(key.sign_digest(h.digest())))
            out += b"DKIM-Signature: " + dkim.fold(
                b"; ".join(b"=".join(f) for f in fields) + b"\r\n", namelen=14)
        return out

    def sign(self, message: bytes, timestamp: int) -> bytes:
        """Any message (CRLF line ends): the signature header(s) prepended."""
        end = message.find(b"\r\n\r\n")
        if end < 0:
            head, body = message if message.endswith(b"\r\n") else message + b"\r\n", b""
        else:
            head, body = message[:end + 2], message[end + 4:]
        return self.header(head, body_hash(body), timestamp) + message

    def build(self, factory: MessageFactory, recipient: Recipient, date: datetime) -> bytes:
        """``factory.build(recipient)``, signed, with the body hash from cached pieces."""
        pieces = factory.pieces(recipient, date=date)
        with self._lock:
            hasher = self._hashers.get(factory)
            if hasher is None:
                hasher = self._hashers[factory] = BodyHasher(factory)
        at, offset = factory.body_start
        head = b"".join(pieces[:at]) + pieces[at][:offset - 2]
        return self.header(head, hasher.digest(pieces), int(date.timestamp())) + b"".join(pieces)


def signing_domain(settings: Settings, options: DkimOptions) -> str:
    return (options.domain or settings.sender.email.rpartition("@")[2]).lower()


def configured(settings: Settings) -> DkimOptions | None:
    """The ``[dkim]`` table, or None when the file has none (signing off)."""
    found = settings.sections.get("dkim")
    if isinstance(found, DkimOptions):
        return found
    written = settings.raw.get("dkim")
    if isinstance(written, Mapping):
        return DkimOptions.model_validate(written)
    return None


def load_signer(settings: Settings, environ: Mapping[str, str]) -> Signer | None:
    """The signer for ``[dkim]``; None when signing is off. A configured
    signature whose key is missing or wrong is an error, never unsigned mail."""
    options = configured(settings)
    if options is None:
        return None
    found = key_text(environ)
    if found is None:
        raise DkimKeyError([Problem(
            "dispatch.toml", "[dkim] is set but no private key was given",
            settings.line_of("dkim"), "dkim",
            f"the PEM text in ${KEY_ENV} or its path in ${KEY_FILE_ENV}")])
    pem, source = found
    by_algorithm = {k.algorithm: k for k in parse_keys(pem, source)}
    missing = [a for a in options.algorithms if a not in by_algorithm]
    if missing:
        kind = " and ".join(a.split("-")[0].upper().replace("ED", "Ed") for a in missing)
        raise DkimKeyError([Problem(
            source, f"[dkim] algorithm needs an {kind} key, and {source} has none",
            None, None, "a key of each configured algorithm (PEM blocks may be "
            "concatenated)")])
    keys = [by_algorithm[a] for a in options.algorithms]
    return Signer(keys, signing_domain(settings, options),
                  {a: options.selector_for(a) for a in options.algorithms})
