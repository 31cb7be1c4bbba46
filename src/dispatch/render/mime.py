"""MIME messages for an edition: built once, filled in per recipient.

:class:`MessageFactory` serialises the edition's whole message once — static
headers, boundaries and both parts quoted-printable encoded — cut at the
recipient placeholders. :meth:`MessageFactory.build` then only encodes the few
per-recipient values and joins bytes. Each value sits between two QP soft line
breaks (``=\\r\\n``), which decode to nothing, so a value never shifts the line
breaking of the text around it and no line exceeds 76 characters.

:func:`build_naive_message` is the slow, obvious path (Jinja + premailer +
``EmailMessage`` per recipient) that the fast path must match when parsed.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from dispatch.config import Settings
from dispatch.errors import InputError, Problem, TemplateError
from dispatch.models import Article
from dispatch.render.edition import (
    PLACEHOLDERS,
    Edition,
    Recipient,
    first_name,
    render_for_recipient,
)
from dispatch.render.settings import load_email_settings
from dispatch.values import controls, urls


class RecipientError(InputError):
    """A recipient value that cannot go into a message."""


class HeaderInjectionError(RecipientError):
    """A header value holding a line break: refused before anything is sent."""


# CR and LF end a header; the others are line breaks to Python's email package
# and to some clients, so they are refused as well.
_LINE_BREAKS = controls.LINE_BREAK
_CONTROL = controls.CONTROL
_ANY_BAD = controls.ONE_LINE
_KEYS = {token: key for key, token in PLACEHOLDERS.items()}
_TOKEN = re.compile("|".join(re.escape(t) for t in PLACEHOLDERS.values()))
_SOFT = b"=\r\n"
# 45 bytes of UTF-8 make 60 base64 characters: a 72-character encoded-word.
_WORD_BYTES = 45


def _qp_value(value: str) -> bytes:
    """One recipient value quoted-printable on its own, with CRLF soft line breaks."""
    return binascii.b2a_qp(value.encode()).replace(b"=\n", b"=\r\n")


def _escape_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def check_header_value(field: str, value: str, path: str = "recipient") -> None:
    if _LINE_BREAKS.search(value):
        raise HeaderInjectionError([Problem(path, f"{field} contains a line break "
                                            f"({value!r}); refused to prevent header injection",
                                            None, field, "one line of text")])


def _sendable(email: str) -> bool:
    """An address by the address module's rules, in ASCII as every import stores it."""
    from dispatch.values.address import is_sendable  # email-validator: slow to import

    return not email.startswith("<") and is_sendable(email)


def check_recipient(recipient: Recipient) -> None:
    """Refuse anything that could break or forge the message."""
    name = recipient.name or ""
    mailto = recipient.unsubscribe_mailto or ""
    # One scan on the happy path; the slow loop only runs to say what is wrong.
    prefs = recipient.preferences_url or ""
    if _ANY_BAD.search(f"{name}{recipient.email}{recipient.unsubscribe_url}"
                       f"{recipient.webview_url}{mailto}{prefs}"):
        for field, value in (("name", name), ("email", recipient.email),
                             ("unsubscribe_url", recipient.unsubscribe_url),
                             ("webview_url", recipient.webview_url),
                             ("unsubscribe_mailto", mailto), ("preferences_url", prefs)):
            check_header_value(field, value)
            if _CONTROL.search(value):
                raise RecipientError([Problem("recipient", f"{field} contains a control "
                                              "character", None, field, "printable text")])
    if not _sendable(recipient.email):
        raise RecipientError([Problem("recipient", f"{recipient.email!r} is not an address "
                                      "dispatch can send to", None, "email",
                                      "an ASCII address such as ann@example.org")])
    url = recipient.unsubscribe_url
    # RFC 3986 characters only: lxml leaves them alone in attributes except "&".
    if not urls.is_plain_uri(url) or not urls.is_https_or_local(url):
        raise RecipientError([Problem("recipient", f"unsubscribe URL {url!r} is not usable",
                                      None, "unsubscribe_url", "an https:// URL (RFC 8058)")])
    if not urls.is_plain_uri(recipient.webview_url):
        raise RecipientError([Problem("recipient", f"web-view URL {recipient.webview_url!r} is "
                                      "not usable", None, "webview_url", "an http(s) URL")])
    if prefs and not urls.is_plain_uri(prefs):
        raise RecipientError([Problem("recipient", f"preferences URL {prefs!r} is not usable",
                                      None, "preferences_url", "an http(s) URL")])
    if mailto and not urls.is_plain_mailto(mailto):
        raise RecipientError([Problem("recipient", f"{mailto!r} is not a mailto: URL", None,
                                      "unsubscribe_mailto", "mailto:address")])


_ID_MAX = 100


def _id_slug(edition_id: str) -> str:
    """The edition id as it appears in Message-ID: whole (characters outside
    A-Z, a-z, 0-9, "." and "-" as "-"), or, past 100 characters, a hash of it:
    never cut, so two editions whose ids share a long start stay apart."""
    slug = re.sub(r"[^A-Za-z0-9.-]+", "-", edition_id).strip("-.") or "edition"
    if len(slug) > _ID_MAX:
        return "e" + hashlib.sha256(edition_id.encode()).hexdigest()[:32]
    return slug


def message_id(edition_id: str, email: str, domain: str) -> str:
    """Stable per (edition, recipient), so a resend is recognisable as the same message."""
    digest = hashlib.sha256(f"{edition_id}\x00{email.lower()}".encode()).hexdigest()[:24]
    return f"<{digest}.{_id_slug(edition_id)}@{domain}>"


def boundary_for(edition_id: str) -> str:
    # "==" cannot occur in quoted-printable text ("=" is written "=3D").
    return "==dispatch-" + hashlib.sha256(edition_id.encode()).hexdigest()[:24] + "=="


def _sender_domain(settings: Settings) -> str:
    return settings.sender.email.rpartition("@")[2] or "localhost"


def _header(name: str, value: str) -> bytes:
    """One header as EmailMessage would write it: folded, RFC 2047 when not ASCII."""
    header = policy.SMTP.header_factory(name, value)
    return str(header.fold(policy=policy.SMTP)).encode("ascii")


def _qp(text: str) -> bytes:
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(data, istext=True).replace(b"\n", b"\r\n")


def display_name(name: str | None) -> str:
    """The To: display name: whitespace runs collapsed, ends trimmed, as mail
    clients would show it anyway."""
    return " ".join(name.split()) if name else ""


def _to_header(recipient: Recipient) -> bytes:
    name = display_name(recipient.name)
    if not name:
        return b"To: " + recipient.email.encode() + b"\r\n"
    if name.isascii() and "=?" not in name:
        # Always quoted: exact for any printable ASCII, no guessing about specials.
        shown = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        raw = name.encode("utf-8")
        if len(raw) > _WORD_BYTES:
            # Several encoded-words: let the stdlib fold them (parsers disagree
            # about the space between words; matching it exactly is what counts).
            return _header("To", str(Address(name, addr_spec=recipient.email)))
        shown = "=?utf-8?b?" + binascii.b2a_base64(raw, newline=False).decode() + "?="
    line = f"To: {shown} <{recipient.email}>\r\n"
    if len(line) > 998:
        raise RecipientError([Problem("recipient", "name too long for a header", None, "name",
                                      "at most a few hundred characters")])
    return line.encode()


def _list_unsubscribe(recipient: Recipient) -> str:
    value = f"<{recipient.unsubscribe_url}>"
    if recipient.unsubscribe_mailto:
        value += f",\r\n <{recipient.unsubscribe_mailto}>"
    return f"List-Unsubscribe: {value}\r\n"


class MessageFactory:
    """Built once per edition; :meth:`build` is cheap per recipient."""

    def __init__(self, edition: Edition, settings: Settings) -> None:
        self.edition = edition
        es = load_email_settings(settings)
        self._fallback = es.name_fallback
        self._first_fallback = es.first_name_fallback
        self._domain = _sender_domain(settings)
        for field, value in (("subject", edition.subject), ("list_id", edition.list_id),
                             ("sender.name", settings.sender.name),
                             ("sender.email", settings.sender.email),
                             ("sender.reply_to", settings.sender.reply_to or "")):
            check_header_value(field, value, "dispatch.toml" if field.startswith("sender.")
                               else f"edition {edition.edition_id}")
        fold = _header
        boundary = boundary_for(edition.edition_id)
        from_ = fold("From", str(Address(settings.sender.name,
                                         addr_spec=settings.sender.email)))
        subject = fold("Subject", edition.subject)
        after = b""
        if settings.sender.reply_to:
            after += fold("Reply-To", settings.sender.reply_to)
        if edition.list_id:
            after += fold("List-Id", edition.list_id)
        mid_headers = after
        tail = (
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            b"MIME-Version: 1.0\r\n"
            + fold("Content-Type", f'multipart/alternative; boundary="{boundary}"')
            + b"\r\n"
            + f"--{boundary}\r\n".encode()
            + b'Content-Type: text/plain; charset="utf-8"\r\n'
            + b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        between = (
            f"--{boundary}\r\n"
            'Content-Type: text/html; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        ).encode()
        sequence: list[bytes | str] = [from_, "to", subject, "date", "mid", mid_headers,
                                       "unsub_header", tail]
        for piece in self._cut(edition.text, html=False, where=edition.edition_id):
            sequence.append(piece if isinstance(piece, bytes) else "t:" + piece[0])
        sequence += [b"\r\n", between]
        for piece in self._cut(edition.html, html=True, where=edition.edition_id):
            if isinstance(piece, bytes):
                sequence.append(piece)
            else:
                sequence.append(("a:" if piece[1] else "h:") + piece[0])
        sequence += [b"\r\n", f"--{boundary}--\r\n".encode()]
        self._flatten(sequence)
        self._hash = hashlib.sha256(f"{edition.edition_id}\x00".encode())
        self._id_slug = _id_slug(edition.edition_id)
        self._dates: tuple[datetime, bytes] | None = None

    @staticmethod
    def _cut(source: str, *, html: bool, where: str) -> list[bytes | tuple[str, bool]]:
        """The part as encoded static bytes and (key, in_attribute) slots."""
        pieces: list[bytes | tuple[str, bool]] = []
        at = 0
        for match in _TOKEN.finditer(source):
            key = _KEYS[match.group()]
            in_attr = html and source.rfind("<", 0, match.start()) > source.rfind(
                ">", 0, match.start())
            if in_attr and key in ("name", "first_name"):
                # Names are free text; lxml re-quotes attributes around
                # quotes in ways a substitution cannot follow.
                # Rendering refuses this with the template line; this is
                # the last guard for an edition built some other way.
                raise TemplateError([Problem(f"edition {where}", "recipient.name may be used "
                                             "in text only, not inside an HTML attribute",
                                             None, "template",
                                             "{{ recipient.name }} between tags")])
            lead = _SOFT if at else b""
            pieces.append(lead + _qp(source[at:match.start()]) + _SOFT)
            pieces.append((key, in_attr))
            at = match.end()
        last = source[at:]
        if not last.endswith("\n"):
            last += "\n"
        pieces.append((_SOFT if at else b"") + _qp(last))
        return pieces

    def _flatten(self, sequence: list[bytes | str]) -> None:
        """Merge neighbouring static bytes; remember where each slot goes."""
        layout: list[bytes] = []
        slots: list[tuple[int, str]] = []
        for item in sequence:
            if isinstance(item, str):
                slots.append((len(layout), item))
                layout.append(b"")
            elif layout and not (slots and slots[-1][0] == len(layout) - 1):
                layout[-1] += item
            else:
                layout.append(item)
        self._layout = layout
        self._slots = slots
        # Which values this edition's templates use at all: a value no slot
        # takes (say first_name in a template that never greets) costs nothing.
        used = {key.split(":", 1)[-1] for _index, key in slots}
        self._wants_name = "name" in used
        self._wants_first = "first_name" in used
        self._wants_prefs = "preferences_url" in used
        # Where the body begins: after the blank line, inside the static piece
        # that ends the header block (header values never hold a blank line).
        at = next(i for i, piece in enumerate(layout) if b"\r\n\r\n" in piece)
        self.body_start = (at, layout[at].index(b"\r\n\r\n") + 4)

    @property
    def layout(self) -> list[bytes]:
        """The message's static pieces; the slots' places hold empty bytes."""
        return self._layout

    @property
    def slot_indices(self) -> tuple[int, ...]:
        """Positions in :attr:`layout` that a recipient's values fill."""
        return tuple(index for index, _key in self._slots)

    def message_id(self, recipient: Recipient) -> str:
        digest = self._hash.copy()
        digest.update(recipient.email.lower().encode())
        return f"<{digest.hexdigest()[:24]}.{self._id_slug}@{self._domain}>"

    def _date(self, date: datetime) -> bytes:
        cached = self._dates
        if cached is not None and cached[0] is date:
            return cached[1]
        if date.tzinfo is None:
            raise ValueError("date must be timezone-aware")
        line = f"Date: {format_datetime(date)}\r\n".encode()
        self._dates = (date, line)
        return line

    def build(self, recipient: Recipient, *, date: datetime) -> bytes:
        """Full RFC 5322 message bytes (CRLF line ends) for one recipient."""
        return b"".join(self.pieces(recipient, date=date))

    def pieces(self, recipient: Recipient, *, date: datetime) -> list[bytes]:
        """:meth:`build`'s bytes before joining: :attr:`layout` with the slots filled."""
        check_recipient(recipient)
        email = recipient.email
        unsubscribe = recipient.unsubscribe_url
        webview = recipient.webview_url
        # Values are QP-encoded on their own, between soft line breaks.
        email_qp = _qp_value(email)
        html_email = email_qp if "&" not in email else _qp_value(email.replace("&", "&amp;"))
        unsub_qp = _qp_value(unsubscribe)
        web_qp = _qp_value(webview)
        html_unsub = (_qp_value(unsubscribe.replace("&", "&amp;")) if "&" in unsubscribe
                      else unsub_qp)
        html_web = _qp_value(webview.replace("&", "&amp;")) if "&" in webview else web_qp
        values = {
            "to": _to_header(recipient),
            "date": self._date(date),
            "mid": f"Message-ID: {self.message_id(recipient)}\r\n".encode(),
            "unsub_header": _list_unsubscribe(recipient).encode(),
            "t:email": email_qp, "t:unsubscribe_url": unsub_qp, "t:webview_url": web_qp,
            # Only validated URLs and addresses reach attributes (no quotes,
            # no <>, no spaces), so "&" is all lxml would have escaped there.
            "h:email": html_email, "h:unsubscribe_url": html_unsub,
            "h:webview_url": html_web, "a:email": html_email, "a:unsubscribe_url": html_unsub,
            "a:webview_url": html_web,
        }
        if self._wants_name:
            name = recipient.name or self._fallback
            values["t:name"] = _qp_value(name)
            values["h:name"] = _qp_value(_escape_text(name))
        if self._wants_first:
            first = first_name(recipient.name) or self._first_fallback
            values["t:first_name"] = _qp_value(first)
            values["h:first_name"] = _qp_value(_escape_text(first))
        if self._wants_prefs:
            prefs = recipient.preferences_url or unsubscribe
            prefs_qp = _qp_value(prefs)
            html_prefs = _qp_value(prefs.replace("&", "&amp;")) if "&" in prefs else prefs_qp
            values["t:preferences_url"] = prefs_qp
            values["h:preferences_url"] = values["a:preferences_url"] = html_prefs
        out = self._layout.copy()
        for index, key in self._slots:
            out[index] = values[key]
        return out


def assemble_naive(edition: Edition, html: str, text: str, recipient: Recipient,
                   settings: Settings, *, date: datetime) -> bytes:
    """The obvious stdlib construction of one message (one EmailMessage each)."""
    check_recipient(recipient)
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = Address(settings.sender.name, addr_spec=settings.sender.email)
    msg["To"] = Address(display_name(recipient.name), addr_spec=recipient.email)
    msg["Subject"] = edition.subject
    msg["Date"] = date
    msg["Message-ID"] = message_id(edition.edition_id, recipient.email,
                                   _sender_domain(settings))
    if settings.sender.reply_to:
        msg["Reply-To"] = settings.sender.reply_to
    if edition.list_id:
        msg["List-Id"] = edition.list_id
    unsubscribe = f"<{recipient.unsubscribe_url}>"
    if recipient.unsubscribe_mailto:
        unsubscribe += f", <{recipient.unsubscribe_mailto}>"
    msg["List-Unsubscribe"] = unsubscribe
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(text, charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    msg.set_boundary(boundary_for(edition.edition_id))
    return msg.as_bytes()


def build_naive_message(settings: Settings, kind: str, articles: Sequence[Article],
                        edition_id: str, recipient: Recipient, *, date: datetime,
                        subject: str | None = None, intro: str | None = None,
                        template: str | None = None) -> bytes:
    """Render from scratch for this recipient, inline, and build with EmailMessage."""
    check_recipient(recipient)
    edition, html, text = render_for_recipient(settings, kind, articles, edition_id, recipient,
                                               subject=subject, intro=intro, template=template)
    return assemble_naive(edition, html, text, recipient, settings, date=date)
