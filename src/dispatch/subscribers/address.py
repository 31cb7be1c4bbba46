"""Email addresses: the one normal form every table and comparison uses.

We lower-case the domain (it is case-insensitive by definition), keep the
local part as written (RFC 5321 lets a server treat it case-sensitively),
strip surrounding spaces and an enclosing ``<…>``, and turn an
internationalised domain into its ASCII (IDNA) form so two spellings of one
address merge. Validation is deliberately syntactic: a real mailbox can only
be proven by mailing it, and the bounce handling does that.
"""

from __future__ import annotations

import re

# RFC 5322 dot-atom characters; quoted local parts are legal but so rare in
# lists (and so often a paste error) that we refuse them with a clear reason.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class InvalidAddress(ValueError):
    """Why a string is not a usable address; the message is shown to the user.

    ``expected`` says what would be right, shown once by whoever reports it
    (a CSV problem puts it in its "(expected …)" part).
    """

    def __init__(self, message: str, expected: str = "an address like ann@example.com") -> None:
        super().__init__(message)
        self.expected = expected


_LINE_BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a subscriber's name, or None. A name goes into
    the To: header: a line break there would be header injection, so it is
    refused when the name is stored, not at send time."""
    if any(ch in name for ch in _LINE_BREAKS):
        return "the name spans several lines"
    return None


def normalise_email(raw: str) -> str:
    """Return the normal form of ``raw`` or raise :class:`InvalidAddress`."""
    value = raw.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    if not value:
        raise InvalidAddress("empty address")
    if any(ch.isspace() for ch in value):
        raise InvalidAddress(f"{raw.strip()!r} contains a space")
    if value.count("@") != 1:
        raise InvalidAddress(f"{value!r} must contain exactly one @")
    local, domain = value.split("@")
    if not local:
        raise InvalidAddress(f"{value!r} has nothing before the @")
    if len(local) > 64:
        raise InvalidAddress(f"{value!r} has a local part longer than 64 characters")
    if not _LOCAL.match(local):
        raise InvalidAddress(f"{value!r} has characters not allowed before the @")
    domain = domain.rstrip(".").lower()
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidAddress(f"{value!r} has an invalid domain") from None
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise InvalidAddress(f"{value!r} has an invalid domain",
                             "a domain like example.com after the @")
    if labels[-1].isdigit():
        raise InvalidAddress(f"{value!r} has a numeric top-level domain")
    address = f"{local}@{domain}"
    if len(address) > 254:
        raise InvalidAddress(f"{value!r} is longer than 254 characters")
    return address
