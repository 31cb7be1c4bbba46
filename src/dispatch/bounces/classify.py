"""What a message in the bounce mailbox is, and which of our messages it is about.

The order of the questions is what keeps a vacation reply from ever being
read as a bounce:

1. an RFC 3464 delivery status report (structured: trusted as written);
2. an RFC 5965 feedback report (a complaint when ``Feedback-Type: abuse``);
3. a mail system's own non-standard bounce (from ``MAILER-DAEMON`` and the
   like, see ``nonstandard.py``). Bounces are themselves automatic
   (``Auto-Submitted: auto-replied``), so they are asked about before…
4. …an automatic reply from a person's mailbox (RFC 3834
   ``Auto-Submitted`` other than ``no``, ``X-Autoreply``, ``X-Autorespond``,
   ``Precedence: auto_reply``, a vacation or out-of-office subject): never a
   bounce, never an unsubscribe;
5. a mail to the List-Unsubscribe mailto (``unsubscribe+TOKEN@…`` among the
   addresses it was sent to, or an older ``unsubscribe TOKEN`` subject).

A message is *recognised* only when it is one of these AND names one of our
messages by a valid signed token (the VERP return path, the mailto address,
or the unsubscribe link in the returned headers). Anything else is left
exactly where it is.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from email.utils import getaddresses

from dispatch.bounces.arf import original_mail_from, parse_arf
from dispatch.bounces.dsn import is_report, parse_dsn
from dispatch.bounces.model import Finding, Kind, header_text
from dispatch.bounces.nonstandard import looks_like_bounce, parse_text_bounce
from dispatch.bounces.verp import RowToken, find_tokens
from dispatch.unsubscribe import UnsubscribeToken
from dispatch.unsubscribe import verify_token as verify_link_token

_VACATION = re.compile(
    r"^\s*(auto(matic|matische)?[ -]?(reply|response|antwort|r[ée]ponse)|autoreply|"
    r"auto:|out of (the )?office|ooo\b|away from (the )?(office|my)|on vacation|vacation|"
    r"abwesenheit|r[ée]ponse automatique|respuesta autom[áa]tica|"
    r"fuera de la oficina|risposta automatica|fuori sede|afwezig)",
    re.IGNORECASE)
# Where the mail was *sent to*: only these may carry an unsubscribe token
# (a token merely quoted in a body, e.g. a forwarded newsletter, is not a request).
_ENVELOPE_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To",
                     "X-Envelope-To", "X-Rcpt-To")
_LINK = re.compile(r"/unsubscribe/([A-Za-z0-9_-]{4,400}\.[A-Za-z0-9_-]{20,100})")
_SUBJECT_TOKEN = re.compile(r"^\s*unsubscribe\s+([A-Za-z0-9_-]{4,400}\.[A-Za-z0-9_-]{20,100})",
                            re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Tokens:
    """Who the report is about, as signed tokens."""

    bounce_rows: tuple[int, ...] = ()
    unsubscribe_rows: tuple[int, ...] = ()
    links: tuple[UnsubscribeToken, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.bounce_rows or self.unsubscribe_rows or self.links)


@dataclass(frozen=True, slots=True)
class Classified:
    report_id: str
    """The report's Message-ID, or ``sha256:…`` of its bytes when it has none."""
    format: str
    """dsn, arf, bounce (non-standard), autoreply, unsubscribe or unknown."""
    findings: tuple[Finding, ...] = ()
    tokens: Tokens = field(default_factory=Tokens)
    subject: str = ""

    @property
    def recognised(self) -> bool:
        return self.format != "unknown" and bool(self.findings) and bool(self.tokens)


@dataclass(frozen=True, slots=True)
class Locals:
    """The local parts our tokens follow, and the key that signs them."""

    key: bytes
    bounce: str | None
    unsubscribe: str | None


def parse(raw: bytes) -> Message:
    # compat32 keeps header values as plain strings: building the default
    # policy's header objects for every header of every part took most of
    # the time, and only a few headers need decoding (``header_text``).
    return message_from_bytes(raw)


def readable_text(message: Message) -> str:
    """Every header and every decoded text part, returned messages included."""
    chunks: list[str] = []
    for part in message.walk():
        chunks.extend(f"{k}: {v}" for k, v in part.items())
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            charset = part.get_content_charset() or "utf-8"
            try:
                chunks.append(payload.decode(charset, "replace"))
            except LookupError:
                chunks.append(payload.decode("utf-8", "replace"))
        elif isinstance(payload, list):
            # message/delivery-status blocks and message/rfc822 children are
            # walked as parts of their own; nothing more to add here.
            continue
    return "\n".join(chunks)


def _body_text(message: Message) -> str:
    """The human-readable parts only (for a non-standard bounce's words)."""
    chunks: list[str] = []
    for part in message.walk():
        if part.get_content_maintype() == "text" and not part.is_multipart():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                text = payload.decode(part.get_content_charset() or "utf-8", "replace")
                if part.get_content_subtype() == "html":
                    text = re.sub(r"<[^>]+>", " ", text)
                chunks.append(text)
    return "\n".join(chunks)


def is_autoreply(message: Message) -> str | None:
    """Why ``message`` is an automatic reply, or None."""
    submitted = str(message.get("Auto-Submitted", "")).strip().lower()
    if submitted and not submitted.startswith("no"):
        return f"Auto-Submitted: {submitted}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Vacation"):
        if message.get(name) is not None:
            return f"{name} header"
    precedence = str(message.get("Precedence", "")).strip().lower()
    if precedence == "auto_reply":
        return "Precedence: auto_reply"
    subject = header_text(message, "Subject")
    if _VACATION.search(subject):
        return f"vacation subject {subject[:80]!r}"
    return None


def find_all(message: Message, text: str, locals_: Locals) -> Tokens:
    bounce = (find_tokens(locals_.key, "bounce", locals_.bounce,
                          [original_mail_from(message), text]) if locals_.bounce else [])
    addressed = [f"{addr}" for name in _ENVELOPE_HEADERS
                 for _, addr in getaddresses([str(v) for v in message.get_all(name, [])])]
    unsub: list[RowToken] = []
    if locals_.unsubscribe:
        unsub = find_tokens(locals_.key, "unsubscribe", locals_.unsubscribe, addressed)
    links: list[UnsubscribeToken] = []
    for match in _LINK.finditer(text):
        token = verify_link_token(locals_.key, match.group(1))
        if token is not None and token not in links:
            links.append(token)
    return Tokens(tuple(t.row_id for t in bounce), tuple(t.row_id for t in unsub), tuple(links))


def report_id(message: Message, raw: bytes) -> str:
    found = " ".join(str(message.get("Message-ID", "")).split())
    if found and len(found) <= 300:
        return found
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def classify(raw: bytes, locals_: Locals) -> Classified:
    """What ``raw`` is; never raises for a malformed message (it is "unknown")."""
    try:
        message = parse(raw)
        subject = header_text(message, "Subject")
        text = readable_text(message)
    except Exception:  # a message the parser cannot even read is not ours
        return Classified("sha256:" + hashlib.sha256(raw).hexdigest(), "unknown")
    rid = report_id(message, raw)
    tokens = find_all(message, text, locals_)
    bounce_only = Tokens(tokens.bounce_rows, (), tokens.links)
    if is_report(message, "delivery-status"):
        return Classified(rid, "dsn", tuple(parse_dsn(message)), bounce_only, subject)
    if is_report(message, "feedback-report"):
        return Classified(rid, "arf", tuple(parse_arf(message)), bounce_only, subject)
    body = _body_text(message)
    if looks_like_bounce(message, body):
        return Classified(rid, "bounce", (parse_text_bounce(message, body),), bounce_only,
                          subject)
    why = is_autoreply(message)
    if why is not None:
        return Classified(rid, "autoreply", (Finding(Kind.AUTOREPLY, diagnostic=why),), tokens,
                          subject)
    if tokens.unsubscribe_rows:
        return Classified(rid, "unsubscribe", (Finding(Kind.UNSUBSCRIBE, diagnostic=(
            f"mail to the List-Unsubscribe address, subject {subject[:80]!r}")),),
            Tokens((), tokens.unsubscribe_rows, ()), subject)
    legacy = _SUBJECT_TOKEN.match(subject)
    if legacy is not None and locals_.unsubscribe:
        link = verify_link_token(locals_.key, legacy.group(1))
        if link is not None:
            return Classified(rid, "unsubscribe", (Finding(
                Kind.UNSUBSCRIBE, diagnostic="mail to the List-Unsubscribe address (token in "
                "the subject)"),), Tokens((), (), (link,)), subject)
    return Classified(rid, "unknown", (), tokens, subject)
