"""twitter-text 3.1.0's ``parseTweet`` and ``extractUrlsWithIndices``, ported.

X counts a post with its official JavaScript library, so this follows that
library's code step by step rather than any other port: its regular
expressions are copied from the pinned npm package by
``tools/social_tables.py`` into :mod:`dispatch.social.tables_x`, and run
here on the text as UTF-16 code units (one ``str`` character per unit, see
:func:`utf16`) because that is what JavaScript runs them on: a character
class over surrogates, an index or a ``.length`` means the same thing here
as there.

Two consequences people notice: an emoji sequence costs 2 only if
twemoji-parser 11's expression knows it whole (a newer ZWJ sequence such as
🧑‍🤝‍🧑 is several emoji and joiners: 2 + 1 + 2 + 1 + 2), and a link
without ``http`` counts as 23 only when its TLD is in the library's list.
``tests/test_social_conformance.py`` compares this with the library itself.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from dispatch.social import tables_x as tables

MAX_URL_LENGTH = 4096
MAX_TCO_SLUG_LENGTH = 40
MAX_DOMAIN_LABEL_LENGTH = 63
DEFAULT_PROTOCOL = "https://"

_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
# punycode.js 1.4.1, which twitter-text's idna check calls.
_PUNYCODE_SEPARATORS = re.compile("[.\u3002\uff0e\uff61]")
_PUNYCODE_NON_ASCII = re.compile("[^\x20-\x7e]")


# Case-insensitive matching: JavaScript (without the u flag) never matches
# these with an ASCII letter (or U+212B with "å"); Python's re does. Matching
# runs on a copy where they are replaced by characters that sit in the same
# character classes of the patterns and match nothing else; values are
# always read from the original text.
JS_CASE_MASK = str.maketrans({"\u0130": "\u0180", "\u0131": "\u0180", "\u017f": "\u0180",
                              "\u212a": "\u2118", "\u212b": "\u2118"})


def _pair(match: re.Match[str]) -> str:
    code = ord(match.group()) - 0x10000
    return chr(0xD800 + (code >> 10)) + chr(0xDC00 + (code & 0x3FF))


def utf16(text: str) -> str:
    """``text`` with every astral character written as its surrogate pair."""
    return _ASTRAL.sub(_pair, text)


def from_utf16(units: str) -> str:
    """The inverse of :func:`utf16` (a lone surrogate stays as it is)."""
    return units.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


@cache
def _compiled(name: str) -> re.Pattern[str]:
    return re.compile(getattr(tables, f"{name}_SOURCE"), getattr(tables, f"{name}_FLAGS"))


@dataclass(frozen=True, slots=True)
class UrlEntity:
    url: str
    start: int
    """UTF-16 index, as twitter-text reports it."""
    end: int


@dataclass(frozen=True, slots=True)
class ParsedTweet:
    weighted_length: int
    valid: bool


def _punycode_to_ascii(label: str) -> str:
    """punycode.js ``toASCII`` on one label (its ``mapDomain`` included)."""
    parts = label.split("@")
    prefix = ""
    if len(parts) > 1:
        prefix, label = parts[0] + "@", parts[1]
    pieces = _PUNYCODE_SEPARATORS.sub(".", label).split(".")
    encoded = [
        "xn--" + from_utf16(piece).encode("punycode").decode("ascii")
        if _PUNYCODE_NON_ASCII.search(piece) else piece
        for piece in pieces
    ]
    return prefix + ".".join(encoded)


def _idna_to_ascii(domain: str) -> str | None:
    masked = domain.translate(JS_CASE_MASK)
    if domain[:4] == "xn--" and not _compiled("VALID_ASCII_DOMAIN").search(masked):
        return None
    labels = domain.split(".")
    for label in labels:
        size = len(utf16(_punycode_to_ascii(label)))
        if size < 1 or size > MAX_DOMAIN_LABEL_LENGTH:
            return None
    return ".".join(labels)


def _is_valid_url(url: str, protocol: str, domain: str) -> bool:
    encoded = _idna_to_ascii(domain)
    if not encoded:
        return False
    length = len(url) + len(encoded) - len(domain)
    return len(protocol) + length <= MAX_URL_LENGTH


UrlCheck = Callable[[str, str, str], bool]
"""(url, protocol or the default one, domain), in UTF-16 units -> whether it is a URL."""


def extract_urls(units: str, *, without_protocol: bool = True,
                 valid: UrlCheck | None = None) -> list[UrlEntity]:
    """``extractUrlsWithIndices`` on UTF-16 ``units`` (see :func:`utf16`).

    ``valid`` replaces twitter-text's own check of a match's length and
    domain (Mastodon's server runs the Ruby gem's, which differs)."""
    if not units or ("." not in units if without_protocol else ":" not in units):
        return []
    urls: list[UrlEntity] = []
    masked = units.translate(JS_CASE_MASK)

    def group(match: re.Match[str], number: int) -> str:
        start, end = match.span(number)
        return units[start:end] if start >= 0 else ""

    for match in _compiled("EXTRACT_URL").finditer(masked):
        before, url = group(match, 2), group(match, 3)
        protocol, domain, path = group(match, 4), group(match, 5), group(match, 7)
        masked_domain = masked[match.start(5):match.end(5)] if domain else ""
        end = match.end()
        start = end - len(url)
        if not (valid or _is_valid_url)(url, protocol or DEFAULT_PROTOCOL, domain):
            continue
        if not protocol:
            if (not without_protocol
                    or _compiled("INVALID_URL_WITHOUT_PROTOCOL_PRECEDING_CHARS").search(before)):
                continue
            last: UrlEntity | None = None
            ascii_end = 0
            for found in _compiled("VALID_ASCII_DOMAIN").finditer(masked_domain):
                ascii_domain = domain[found.start():found.end()]
                ascii_start = domain.find(ascii_domain, ascii_end)
                ascii_end = ascii_start + len(ascii_domain)
                last = UrlEntity(ascii_domain, start + ascii_start, start + ascii_end)
                urls.append(last)
            if last is None:
                continue
            if path:
                urls[-1] = UrlEntity(url.replace(domain, last.url, 1), last.start, end)
        else:
            tco = _compiled("VALID_TCO_URL").search(url.translate(JS_CASE_MASK))
            if tco:
                slug = tco.group(1)
                if slug and len(slug) > MAX_TCO_SLUG_LENGTH:
                    continue
                url = url[:tco.end()]
                end = start + len(url)
            urls.append(UrlEntity(url, start, end))
    return urls


def _weight(unit: str) -> int:
    code = ord(unit)
    for low, high, weight in tables.RANGES:
        if low <= code <= high:
            return weight
    return tables.DEFAULT_WEIGHT


def parse_tweet(text: str) -> ParsedTweet:
    """``parseTweet(text)`` with the default (v3) configuration."""
    units = utf16(unicodedata.normalize("NFC", text))
    url_at = {u.start: len(u.url) for u in extract_urls(units)}
    emoji_at = {m.start(): len(m.group()) for m in _compiled("EMOJI").finditer(units)}
    invalid = _compiled("INVALID_CHARS")
    weighted, valid, index = 0, True, 0
    while index < len(units):
        if index in url_at:
            weighted += tables.TRANSFORMED_URL_LENGTH * tables.SCALE
            index += url_at[index] - 1
        elif index in emoji_at:
            weighted += tables.DEFAULT_WEIGHT
            index += emoji_at[index] - 1
        else:
            if ("\ud800" <= units[index] <= "\udbff" and index + 1 < len(units)
                    and "\udc00" <= units[index + 1] <= "\udfff"):
                index += 1
            weighted += _weight(units[index])
        # twitter-text tests only the last unit it stepped over, and so do we.
        if valid and invalid.search(units[index:index + 1]):
            valid = False
        index += 1
    length = weighted // tables.SCALE
    return ParsedTweet(length, valid and 0 < length <= tables.MAX_WEIGHTED_LENGTH)


def has_invalid_characters(text: str) -> bool:
    """Whether ``text`` holds a character twitter-text refuses (U+FEFF, U+FFFE, U+FFFF)."""
    return bool(_compiled("INVALID_CHARS").search(text))
