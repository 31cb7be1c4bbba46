"""The one address module: syntax, the sending spelling and the identity key."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.values.address import (
    InvalidAddress,
    address_problem,
    identity_key,
    name_problem,
    parse_address,
    text_and_key,
)


@pytest.mark.parametrize("spellings", [
    ("Bob@Example.com", "bob@example.com", "BOB@EXAMPLE.COM", " <bOb@example.COM> "),
    ("kim@bücher.example", "kim@xn--bcher-kva.example", "KIM@BÜCHER.example"),
])
def test_one_person_one_key(spellings: tuple[str, ...]) -> None:
    assert len({identity_key(s) for s in spellings}) == 1


def test_spelling_is_kept_for_sending() -> None:
    bob = parse_address("  Bob@Example.com ")
    assert (bob.text, bob.key) == ("Bob@Example.com", "bob@example.com")
    # An internationalised domain is sent in its ASCII form.
    assert parse_address("Kim@Bücher.example").text == "Kim@xn--bcher-kva.example"


@pytest.mark.parametrize(("raw", "says"), [
    ("", "empty address"),
    ("no-at-sign", "exactly one @"),
    ("a@b@c.com", "exactly one @"),
    ("@example.com", "nothing before the @"),
    ("ann@", "nothing after the @"),
    ("ann smith@example.com", "contains a space"),
    ("ann@example", "invalid domain"),
    ("ann@-bad-.com", "invalid domain"),
    ("ann@example.123", "invalid domain"),
    ("x@localhost", "invalid domain"),
    ("x@printer.local", "invalid domain"),
    ("x@nowhere.invalid", "invalid domain"),
    ("ann..x@example.com", "two periods"),
    (".ann@example.com", "start with a period"),
    ('"ann"@example.com', "quoting"),
    ("zoë@example.com", "internationalized characters"),
    ("a" * 65 + "@example.com", "more than 64 characters"),
    ("a@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + "." + "e" * 60 + ".com", "too long"),
])
def test_invalid_addresses_say_why(raw: str, says: str) -> None:
    with pytest.raises(InvalidAddress) as info:
        parse_address(raw)
    assert says in str(info.value)
    assert address_problem(raw) == str(info.value)


def test_names_with_line_breaks_are_refused() -> None:
    assert name_problem("Ann\nBcc: x@example.com") is not None
    assert name_problem("Ann Smith") is None


_LOCAL_CHARS = st.sampled_from([*"abcXYZ019.-_+'!#=~", "..", "ä", '"', "@", " "])
_DOMAINS = st.sampled_from(["example.com", "Example.COM", "bücher.de", "xn--bcher-kva.de",
                            "localhost", "-bad.com", "a.b", "ex_ample.com", "example.123",
                            "sub.example.co.uk", "exa..mple.com", "x.test"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_LOCAL_CHARS, min_size=0, max_size=8).map("".join), _DOMAINS)
def test_fast_path_agrees_with_email_validator(local: str, domain: str) -> None:
    """The per-domain cache must accept and key exactly what email-validator does."""
    raw = f"{local}@{domain}"
    try:
        # Surrounding spaces are ours to strip; everything else is the reference's.
        reference = validate_email(raw.strip(), check_deliverability=False,
                                   allow_smtputf8=False, test_environment=True)
    except EmailNotValidError:
        reference = None
    try:
        ours = parse_address(raw)
    except InvalidAddress:
        ours = None
    if reference is None:
        assert ours is None, raw
    else:
        assert ours is not None, raw
        assert ours.key == f"{reference.local_part}@{reference.ascii_domain}".lower()


def _reference(raw: str) -> tuple[str, str] | None:
    """(text, key) straight from email-validator: the spelling with an IDN
    domain in ASCII, the key the whole of that in lower case."""
    value = raw.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    try:
        ref = validate_email(value, check_deliverability=False, allow_smtputf8=False,
                             test_environment=True)
    except EmailNotValidError:
        return None
    domain = value.rpartition("@")[2]
    text = f"{ref.local_part}@{domain if domain.isascii() else ref.ascii_domain}"
    if len(text) > 254:
        return None
    return text, f"{ref.local_part}@{ref.ascii_domain}".lower()


# Pieces an attacker or a broken export might put in an address: case and
# IDN spellings of one domain, look-alike and full-width letters, dots in
# odd places, every ASCII punctuation mark, control and space characters,
# a Turkish dotted capital I (whose lower case is two characters) and
# lengths right at the limits.
_HOSTILE_LOCAL = st.one_of(
    st.text(st.sampled_from([*"aZ09.-_+'!#$%&*/=?^`{|}~", "\u0130", "\u212a", "\uff41",
                             "ä", "\x00", "\t", " ", "\r", "\n", '"', "(", ")", ",", ":",
                             ";", "<", ">", "[", "]", "\\", "@"]), max_size=12),
    st.integers(60, 70).map(lambda n: "a" * n),
)
_HOSTILE_DOMAIN = st.one_of(
    st.sampled_from(["example.com", "EXAMPLE.com", "bücher.de", "BÜCHER.de", "xn--bcher-kva.de",
                     "XN--BCHER-KVA.DE", "example.com.", ".example.com", "ex..ample.com",
                     "\uff45xample.com", "\u0130stanbul.example", "\u212aelvin.example",
                     "münchen.example", "例え.テスト", "localhost", "x.test", "1.2.3.4",
                     "[127.0.0.1]", "exa mple.com", "example.com\n", "a-.example",
                     "_dmarc.example.com", "ex\u00adample.com", "ß.example",
                     "xn--zca.example", "example.c", "example.123"]),
    st.integers(180, 260).map(lambda n: "b" * 60 + "." + "c" * 60 + "." + "d" * (n - 122)
                              + ".org"),
    st.text(st.sampled_from([*"aZ09.-_", "ü", "\u0130", "\uff41"]), min_size=1, max_size=12)
    .map(lambda d: d + ".example"),
)


@settings(max_examples=1500, deadline=None)
@given(_HOSTILE_LOCAL, _HOSTILE_DOMAIN, st.sampled_from(["", " ", "<", "\t"]))
def test_import_fast_path_matches_email_validator(local: str, domain: str, around: str
                                                  ) -> None:
    """text_and_key (what an import calls a million times) accepts exactly
    what email-validator accepts, with the same sending spelling and key:
    one identity, however hostile the input."""
    raw = f"{around}{local}@{domain}{'>' if around == '<' else around}"
    reference = _reference(raw)
    if reference is not None and (not reference[0].isascii() or reference[0].startswith('"')
                                  or len(reference[0].rpartition("@")[0]) > 64):
        reference = None  # refused on purpose: SMTPUTF8, quoting, RFC 5321's 64 octets
    try:
        ours: tuple[str, str] | None = text_and_key(raw)
    except InvalidAddress:
        ours = None
    assert ours == reference, raw
    if ours is not None:
        assert ours == (parse_address(raw).text, parse_address(raw).key)


@pytest.mark.parametrize("raw", [
    "ann@example.org", "Bob.Smith+news@Example.COM", "a@b", "ann@localhost", "ann@example",
    "ann@@example.org", "ann@exa mple.org", "ann@bücher.de", "ann@xn--bcher-kva.de",
    "josé@example.org", "<ann@example.org>", " ann@example.org", "x" * 65 + "@example.org",
    "a@" + "b" * 250 + ".org", "ann.@example.org", ".ann@example.org", "ann@-example.org",
    "ann@example.test", "\"quoted\"@example.org", "ann@example.org\r\nBcc: x@y.org",
])
def test_is_sendable_agrees_with_the_full_parse(raw: str) -> None:
    from dispatch.values.address import InvalidAddress, is_sendable, parse_address

    try:
        expected = raw.isascii() and parse_address(raw).text == raw
    except InvalidAddress:
        expected = False
    assert is_sendable(raw) is expected
