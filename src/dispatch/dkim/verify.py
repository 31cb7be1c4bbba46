"""Offline verification of a message's DKIM signatures.

``dispatch dkim verify`` checks a captured ``.eml`` against the TXT record(s)
that ``dispatch dkim keygen`` printed, without asking DNS: dkimpy's
``dnsfunc`` is given the record instead. With no record given, the public
DNS is asked, as a receiving server would.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from dispatch.errors import InputError, Problem

_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class TxtRecord:
    value: str
    name: str | None = None
    """``SELECTOR._domainkey.DOMAIN`` when the record was given in zone syntax."""

    @property
    def key_type(self) -> str:
        match = re.search(r"(?:^|;)\s*k\s*=\s*([A-Za-z0-9]+)", self.value)
        return match.group(1).lower() if match else "rsa"


def parse_txt(text: str) -> TxtRecord:
    """A record as printed by keygen (``name IN TXT ( "…" "…" )``) or as a
    DNS provider shows it (the bare ``v=DKIM1; k=…; p=…``, quoted or not)."""
    text = text.strip()
    name: str | None = None
    head, sep, _rest = text.partition('"')
    words = head.split()
    if sep and words and "._domainkey." in words[0]:
        name = words[0].rstrip(".").lower()
    strings = _QUOTED.findall(text)
    value = "".join(s.replace('\\"', '"') for s in strings) if strings else text
    if "p=" not in value:
        raise InputError([Problem("--txt", "not a DKIM key record", None, None,
                                  '"v=DKIM1; k=rsa; p=…" as `dispatch dkim keygen` prints it')])
    return TxtRecord(value, name)


@dataclass(frozen=True)
class SignatureResult:
    domain: str
    selector: str
    algorithm: str
    ok: bool
    reason: str = ""

    def __str__(self) -> str:
        where = f"{self.algorithm} d={self.domain} s={self.selector}"
        return f"pass: {where}" if self.ok else f"FAIL: {where}: {self.reason}"


def _choose(records: Sequence[TxtRecord], name: str, algorithm: str) -> TxtRecord | None:
    for record in records:
        if record.name == name:
            return record
    wanted = "ed25519" if algorithm.startswith("ed25519") else "rsa"
    unnamed = [r for r in records if r.name is None and r.key_type == wanted]
    return unnamed[0] if unnamed else None


def verify_message(message: bytes, records: Sequence[TxtRecord] | None,
                   source: str = "message") -> list[SignatureResult]:
    """One result per DKIM-Signature header, top first. ``records=None`` asks DNS.

    Raises InputError naming ``source`` when the bytes are not an email at all
    (a Markdown file, a binary), rather than letting dkimpy's exception out."""
    import dkim
    from dkim.util import parse_tag_value

    from dispatch.dkim.sign import body_hash

    message = re.sub(rb"(?<!\r)\n", b"\r\n", message)  # a file saved with LF line ends
    quiet = logging.getLogger("dispatch.dkim.verify")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    try:
        checker = dkim.DKIM(message, logger=quiet)
    except dkim.MessageFormatError as exc:
        detail = str(exc)  # may quote a whole binary line: keep it short
        detail = detail if len(detail) <= 100 else detail[:100] + "…"
        raise InputError([Problem(source, f"is not an email message ({detail})", None, None,
                                  "an .eml file: headers, a blank line, then the body")]
                         ) from None
    signatures = [v for k, v in checker.headers if k.lower() == b"dkim-signature"]
    body = message.partition(b"\r\n\r\n")[2]
    results: list[SignatureResult] = []
    for index, raw in enumerate(signatures):
        try:
            tags = parse_tag_value(raw)
        except dkim.DKIMException as exc:
            results.append(SignatureResult("?", "?", "?", False, f"unreadable signature: {exc}"))
            continue
        domain = tags.get(b"d", b"?").decode(errors="replace")
        selector = tags.get(b"s", b"?").decode(errors="replace")
        algorithm = tags.get(b"a", b"?").decode(errors="replace")
        name = f"{selector}._domainkey.{domain}".lower()
        dnsfunc = None
        if records is not None:
            record = _choose(records, name, algorithm)
            if record is None:
                results.append(SignatureResult(domain, selector, algorithm, False,
                                               f"no --txt record for {name}"))
                continue

            def dnsfunc(_name: bytes, timeout: int = 5, _v: str = record.value) -> bytes:
                return _v.encode()
        if dnsfunc is None:
            from dkim.dnsplug import get_txt

            # Without this, a missing record reads like a tampered message.
            if not get_txt(f"{name}.".encode()):
                results.append(SignatureResult(
                    domain, selector, algorithm, False,
                    f"no DNS TXT record at {name} (publish the one keygen printed, "
                    "or pass it with --txt)"))
                continue
        try:
            ok = (checker.verify(index) if dnsfunc is None
                  else checker.verify(index, dnsfunc=dnsfunc))
        except dkim.DKIMException as exc:
            reason = str(exc)
            if reason.startswith("body hash mismatch"):
                reason = "the body was changed after signing (body hash mismatch)"
            results.append(SignatureResult(domain, selector, algorithm, False, reason))
            continue
        reason = ""
        if not ok:
            relaxed = tags.get(b"c", b"").split(b"/")[-1] == b"relaxed"
            changed = relaxed and body_hash(body) != re.sub(rb"\s", b"", tags.get(b"bh", b""))
            reason = ("the body was changed after signing" if changed
                      else "a signed header was changed or added, or the key does not match")
        results.append(SignatureResult(domain, selector, algorithm, ok, reason))
    return results
