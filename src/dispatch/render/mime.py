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
from collections.abc import Callable, Sequence
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from functools import cache
from operator import itemgetter

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
# Every value a slot can take, in the order MessageFactory.pieces lists them
# ("t:" text part, "h:" HTML text, "a:" HTML attribute).
_VALUES = ("to", "date", "mid", "unsub_header", "t:email", "h:email", "a:email",
           "t:unsubscribe_url", "h:unsubscribe_url", "a:unsubscribe_url",
           "t:webview_url", "h:webview_url", "a:webview_url",
           "t:preferences_url", "h:preferences_url", "a:preferences_url",
           "t:name", "h:name", "t:first_name", "h:first_name")


# The longest line quoted-printable leaves unbroken.
_QP_LINE = 76


def _qp_value(value: str) -> bytes:
    """One recipient value quoted-printable on its own, with CRLF soft line breaks."""
    return binascii.b2a_qp(value.encode()).replace(b"=\n", b"=\r\n")


def _qp_checked(value: str) -> bytes:
    """:func:`_qp_value` of an address or URL that :func:`check_recipient`
    passed (printable ASCII without spaces). Up to a line long, without "="
    and not a lone "." (which would end an SMTP message), such a value is its
    own quoted-printable form, and almost every one is: the encoder is
    skipped for them."""
    if len(value) <= _QP_LINE and "=" not in value and value != ".":
        return value.encode()
    return _qp_value(value)


def _escape_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _qp_name(value: str) -> tuple[bytes, bytes]:
    """A name for the text part and for the HTML part (escaped), each
    quoted-printable. ASCII letters and digits alone (most first names) need
    neither escaping nor encoding."""
    if value.isalnum() and value.isascii() and len(value) <= _QP_LINE:
        raw = value.encode()
        return raw, raw
    return _qp_value(value), _qp_value(_escape_text(value))


def check_header_value(field: str, value: str, path: str = "recipient") -> None:
    if _LINE_BREAKS.search(value):
        raise HeaderInjectionError([Problem(path, f"{field} contains a line break "
                                            f"({value!r}); refused to prevent header injection",
                                            None, field, "one line of text")])


@cache
def _address_rule() -> Callable[[str], bool]:
    # Imported on first use (email-validator is slow to import) and only once:
    # an import statement per message costs more than the check itself.
    from dispatch.values.address import is_sendable

    return is_sendable


def _sendable(email: str) -> bool:
    """An address by the address module's rules, in ASCII as every import stores it."""
    return not email.startswith("<") and _address_rule()(email)


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
        self._mid_end = f".{self._id_slug}@{self._domain}>\r\n".encode()
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
        """Merge neighbouring static bytes into a layout that alternates: static
        pieces at even positions (empty where two slots meet), a slot at every
        odd one, so a message is the layout with its odd positions replaced."""
        layout = [b""]
        keys: list[str] = []
        for item in sequence:
            if isinstance(item, str):
                keys.append(item)
                layout += [b"", b""]
            else:
                layout[-1] += item
        self._layout = layout
        self._keys = tuple(keys)
        # The four header slots are always there, so itemgetter gets several
        # indexes and returns a tuple.
        self._pick = itemgetter(*(_VALUES.index(key) for key in keys))
        # Which values this edition's templates use at all: a value no slot
        # takes (say first_name in a template that never greets) costs nothing.
        used = {key.split(":", 1)[-1] for key in keys}
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
        return tuple(range(1, len(self._layout), 2))

    @property
    def slot_keys(self) -> tuple[str, ...]:
        """What fills each slot, in the order of :attr:`slot_indices`: a header
        line ("to", "date", "mid", "unsub_header") or a recipient value as
        "t:key" (text part), "h:key" (HTML text) or "a:key" (HTML attribute)."""
        return self._keys

    def _digest(self, email: str) -> str:
        digest = self._hash.copy()
        digest.update(email.lower().encode())
        return digest.hexdigest()[:24]

    def message_id(self, recipient: Recipient) -> str:
        return f"<{self._digest(recipient.email)}.{self._id_slug}@{self._domain}>"

    def _date_line(self, date: datetime) -> bytes:
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
        # This runs once per message of every send: each value is computed
        # once, shared where two slots show the same bytes, and skipped when
        # the edition has no slot for it.
        check_recipient(recipient)
        email = recipient.email
        unsubscribe = recipient.unsubscribe_url
        webview = recipient.webview_url
        # Values are QP-encoded on their own, between soft line breaks. Only
        # validated URLs and addresses get here (no quotes, no <>, no spaces),
        # so "&" is all lxml would have escaped in them, in text and attributes.
        email_qp = _qp_checked(email)
        html_email = _qp_checked(email.replace("&", "&amp;")) if "&" in email else email_qp
        unsub_qp = _qp_checked(unsubscribe)
        html_unsub = (_qp_checked(unsubscribe.replace("&", "&amp;")) if "&" in unsubscribe
                      else unsub_qp)
        web_qp = _qp_checked(webview)
        html_web = _qp_checked(webview.replace("&", "&amp;")) if "&" in webview else web_qp
        prefs = recipient.preferences_url
        if prefs and self._wants_prefs:
            prefs_qp = _qp_checked(prefs)
            html_prefs = _qp_checked(prefs.replace("&", "&amp;")) if "&" in prefs else prefs_qp
        else:  # the unsubscribe URL stands in for it (or nothing shows it)
            prefs_qp, html_prefs = unsub_qp, html_unsub
        text_name = html_name = text_first = html_first = b""
        if self._wants_name:
            text_name, html_name = _qp_name(recipient.name or self._fallback)
        if self._wants_first:
            text_first, html_first = _qp_name(first_name(recipient.name) or self._first_fallback)
        to = _to_header(recipient)  # (refuses an overlong name before a naive date)
        dated = self._dates  # one date for a whole run: formatted once
        date_line = dated[1] if dated is not None and dated[0] is date else self._date_line(date)
        mailto = recipient.unsubscribe_mailto
        unsub_header = (f"List-Unsubscribe: <{unsubscribe}>,\r\n <{mailto}>\r\n" if mailto
                        else f"List-Unsubscribe: <{unsubscribe}>\r\n")
        out = self._layout.copy()
        out[1::2] = self._pick((  # in the order of _VALUES
            to, date_line,
            b"Message-ID: <%s%s" % (self._digest(email).encode(), self._mid_end),
            unsub_header.encode(),
            email_qp, html_email, html_email, unsub_qp, html_unsub, html_unsub,
            web_qp, html_web, html_web, prefs_qp, html_prefs, html_prefs,
            text_name, html_name, text_first, html_first))
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
