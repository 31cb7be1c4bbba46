"""Email addresses: the one place that decides what is an address and when
two spellings are the same person.

Every part of dispatch that reads an address (subscriber imports, the CLI,
one-click unsubscribe, settings such as the sender, content checks) goes
through :func:`parse_address`, so they cannot disagree.

Validation is `email-validator`'s syntax check with deliverability checks
off: a real mailbox can only be proven by mailing it, and bounce handling
does that. On top of it:

* surrounding spaces and one enclosing ``<…>`` are removed;
* quoted local parts and non-ASCII local parts are refused with a reason:
  the first are almost always paste errors in a list, the second need
  SMTPUTF8, which not every relay offers;
* an internationalised domain is written in its ASCII (IDNA, "punycode")
  form, which every mail server accepts.

Two results come out of one address:

``Address.text``
    The spelling as given (after the steps above), kept for sending and
    display: ``Bob@Example.com`` is mailed as ``Bob@Example.com``.
``Address.key``
    The identity key: the whole address in lower case with the domain in its
    ASCII form. ``Bob@Example.com``, ``bob@example.com`` and
    ``BOB@EXAMPLE.COM`` share one key, as do ``kim@bücher.de`` and
    ``kim@xn--bcher-kva.de``. RFC 5321 allows a server to treat the local
    part case-sensitively, but every large mailbox provider does not, and
    treating two spellings as two people mails someone who unsubscribed.

:class:`InvalidAddress` is a :class:`ValueError` so that settings models
(pydantic validators) and CSV readers can both turn it into their own error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from email_validator import EmailNotValidError, ValidatedEmail, validate_email

from dispatch.values.controls import has_line_break

EXPECTED = "an address like ann@example.com"

# RFC 5322 dot-atom in ASCII: the local parts email-validator accepts when
# SMTPUTF8 and quoting are off. Such a local part needs no further check, so
# only the domain goes through email-validator (once per distinct domain):
# that keeps a million-row import fast. A test checks both paths agree.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = re.compile(rf"{_ATOM}(?:\.{_ATOM})*\Z")
_MAX_LOCAL = 64
_MAX_ADDRESS = 254

# Syntax only. ``test_environment`` admits the reserved ``.test`` domain
# (RFC 2606), which development and test setups mail through a local MTA;
# other special-use names (localhost, .invalid, .local, …) stay refused.
def _validate(value: str) -> ValidatedEmail:
    return validate_email(value, check_deliverability=False, allow_smtputf8=False,
                          test_environment=True)


_SPACE = re.compile(r"\s")
"""Any character str.isspace() calls a space (the re module's class is the same set)."""
_IN_TEXT = re.compile(r"<?[^\s<>@]+@[^\s<>]+>?")


class InvalidAddress(ValueError):
    """Why a string is not a usable address; the message is shown to the user.

    ``expected`` says what would be right, shown once by whoever reports it
    (a CSV problem puts it in its "(expected …)" part).
    """

    def __init__(self, message: str, expected: str = EXPECTED) -> None:
        super().__init__(message)
        self.expected = expected


@dataclass(frozen=True, slots=True)
class Address:
    text: str
    """The spelling for sending and display (an IDN domain in ASCII form)."""
    key: str
    """The identity key: two addresses with one key are one person."""


def _strip(raw: str) -> str:
    value = raw.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    return value


def _refuse(value: str, exc: EmailNotValidError) -> InvalidAddress:
    reason = str(exc).rstrip(".")
    reason = reason[:1].lower() + reason[1:]
    if "after the @-sign" in reason or "domain" in reason:
        return InvalidAddress(f"{value!r} has an invalid domain: {reason}",
                              "a domain like example.com after the @")
    return InvalidAddress(f"{value!r}: {reason}")


@lru_cache(maxsize=65536)
def _domain(domain: str) -> str:
    """The ASCII form of ``domain`` as written after an @, or InvalidAddress.

    Cached: a list has far fewer domains than addresses."""
    try:
        checked = _validate(f"x@{domain}")
    except EmailNotValidError as exc:
        raise _refuse(f"…@{domain}", exc) from None
    return checked.ascii_domain


@lru_cache(maxsize=65536)
def _domain_forms(domain: str) -> tuple[str, str]:
    """(the ASCII form, the key form) of ``domain``; the key form is the ASCII
    form in lower case. InvalidAddress when it is no domain."""
    ascii_domain = _domain(domain)
    return ascii_domain, ascii_domain.lower()


# The common case in one match: a dot-atom local part and a domain with no
# space, @ or bracket (the domain is then checked by email-validator, cached).
_PLAIN = re.compile(rf"({_ATOM}(?:\.{_ATOM})*)@([^\s@<>\[\]\\\"]+)\Z")


def text_and_key(raw: str) -> tuple[str, str]:
    """``(text, key)`` of :func:`parse_address` without building an Address:
    a million-row import calls this once a row, so the common case is one
    regex match, one cached domain lookup and one ``lower()``."""
    plain = _PLAIN.match(raw)
    if plain is not None:
        local, domain = plain.group(1, 2)
        if len(local) <= _MAX_LOCAL:
            try:
                ascii_domain, key_domain = _domain_forms(domain)
            except InvalidAddress:
                pass  # the full path below words the reason
            else:
                # An ASCII domain keeps its spelling; the local part is ASCII
                # (a dot-atom), so lowering the halves apart lowers the whole.
                text = raw if domain.isascii() else f"{local}@{ascii_domain}"
                if len(text) <= _MAX_ADDRESS:
                    return text, f"{local.lower()}@{key_domain}"
    address = _parse_slowly(raw)
    return address.text, address.key


def parse_address(raw: str) -> Address:
    """The sending spelling and identity key of ``raw``, or :class:`InvalidAddress`."""
    text, key = text_and_key(raw)
    return Address(text, key)


def _parse_slowly(raw: str) -> Address:
    value = _strip(raw)
    if not value:
        raise InvalidAddress("empty address")
    if _SPACE.search(value):
        raise InvalidAddress(f"{value!r} contains a space")
    if value.count("@") != 1:
        raise InvalidAddress(f"{value!r} must contain exactly one @")
    local, domain = value.split("@")
    if not local:
        raise InvalidAddress(f"{value!r} has nothing before the @")
    if not domain:
        raise InvalidAddress(f"{value!r} has nothing after the @",
                             "a domain like example.com after the @")
    if len(local) > _MAX_LOCAL:
        raise InvalidAddress(f"{value!r} has more than {_MAX_LOCAL} characters before the @")
    if _DOT_ATOM.match(local):
        try:
            ascii_domain = _domain(domain)
        except InvalidAddress as exc:
            raise InvalidAddress(str(exc).replace(f"'…@{domain}'", repr(value)),
                                 exc.expected) from None
    else:
        # Everything unusual gets email-validator's own wording.
        try:
            checked = _validate(value)
        except EmailNotValidError as exc:
            raise _refuse(value, exc) from None
        ascii_domain = checked.ascii_domain
    text = local + "@" + (domain if domain.isascii() else ascii_domain)
    if len(text) > _MAX_ADDRESS:
        raise InvalidAddress(f"{value!r} is longer than {_MAX_ADDRESS} characters")
    return Address(text, f"{local.lower()}@{ascii_domain.lower()}")


def is_sendable(raw: str) -> bool:
    """Whether ``raw`` is an ASCII address exactly as stored (what a message
    goes to). Called once per message, so the common case is one regex match
    and a cached domain lookup; anything unusual takes the full parse."""
    plain = _PLAIN.match(raw)
    if plain is not None and raw.isascii():
        if len(plain[1]) > _MAX_LOCAL or len(raw) > _MAX_ADDRESS:
            return False
        try:
            _domain(plain[2])
        except InvalidAddress:
            return False
        return True
    return raw.isascii() and address_problem(raw) is None and parse_address(raw).text == raw


def normalise_email(raw: str) -> str:
    """The sending spelling of ``raw`` (see :func:`parse_address`)."""
    return parse_address(raw).text


def identity_key(raw: str) -> str:
    """The identity key of ``raw`` (see :func:`parse_address`)."""
    return parse_address(raw).key


def address_problem(raw: str) -> str | None:
    """Why ``raw`` is not an address, or None: for checks that only report."""
    try:
        parse_address(raw)
    except InvalidAddress as exc:
        return str(exc)
    return None


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a subscriber's name, or None. A name goes into
    the To: header: a line break there would be header injection, so it is
    refused when the name is stored, not at send time."""
    if has_line_break(name):
        return "the name spans several lines"
    return None


def mask_addresses(text: str) -> str:
    """``text`` with every address in it (``<ann@…>``, ``ann@…``) as ``<…>``:
    a server's reply quotes the recipient, and ten bounces for one reason
    must count as one reason."""
    return _IN_TEXT.sub("<…>", text)
