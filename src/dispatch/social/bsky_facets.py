"""Bluesky rich-text facets, found as @atproto/api's ``RichText.detectFacets`` finds them.

Bluesky shows a link, mention or hashtag as one only when the post carries
a facet for it, with UTF-8 byte offsets. The official app finds them with
``RichText.detectFacets`` (@atproto/api 0.21.0); this is that function's
code, step by step: the same patterns, found in the same order (mentions,
links, tags, cashtags) and then sorted by offset as RichText does, the same
trimming of trailing punctuation, and the same TLD list (npm ``tlds``,
copied into :mod:`dispatch.social.tables_bluesky` by
``tools/social_tables.py``) to decide whether a bare domain or a handle is
one. The patterns without JavaScript's ``u`` flag run on UTF-16 code units,
as in JavaScript; the ``u`` ones on code points.

A mention facet needs the account's DID, which only the network knows: it
is written here with the handle in ``did`` (as
``detectFacetsWithoutResolution`` does) and the Bluesky transport resolves
it when it posts, dropping the facet (the text stays, unlinked) when the
handle does not resolve.
``tests/test_social_conformance.py`` compares this with the library itself.
"""

from __future__ import annotations

import re

import regex

from dispatch.social.post import Facet
from dispatch.social.tables_bluesky import TLDS
from dispatch.social.twitter import JS_CASE_MASK, from_utf16, utf16

# JavaScript's \s (WhiteSpace and LineTerminator); Python's differs.
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_WORD = "A-Za-z0-9_"
_MENTION = re.compile(
    rf"(\A|[{_JS_SPACE}]|\()(@)([a-zA-Z0-9.-]+)"
    rf"((?<=[{_WORD}])(?![{_WORD}])|(?<![{_WORD}])(?=[{_WORD}]))")
# The "m" flag: ^ also after a line terminator.
_URL = re.compile(
    rf"((?:\A|(?<=[\n\r\u2028\u2029]))|[{_JS_SPACE}]|\()"
    rf"((https?://[^{_JS_SPACE}]+)|((?P<domain>[a-z][a-z0-9]*(\.[a-z0-9]+)+)[^{_JS_SPACE}]*))",
    re.IGNORECASE)
_ZERO_WIDTH = "\u00ad\u2060\u200a\u200b\u200c\u200d\u20e2"
_TAG = regex.compile(
    rf"(\A|[{_JS_SPACE}])[#＃]((?!\ufe0f)[^{_JS_SPACE}{_ZERO_WIDTH}]*"
    rf"[^0-9{_JS_SPACE}\p{{P}}{_ZERO_WIDTH}]+[^{_JS_SPACE}{_ZERO_WIDTH}]*)?")
_TRAILING_PUNCTUATION = regex.compile(r"\p{P}+\Z")
_CASHTAG = regex.compile(
    rf"(\A|[{_JS_SPACE}]|\()\$([A-Za-z][A-Za-z0-9]{{0,4}})"
    rf"(?=[{_JS_SPACE}]|\Z|[.,;:!?)\"'\u2019])")
_GRAPHEME = regex.compile(r"\X")
_JS_TRIM = regex.compile(rf"\A[{_JS_SPACE}]+|[{_JS_SPACE}]+\Z")
MAX_TAG_GRAPHEMES = 64


def is_valid_domain(name: str) -> bool:
    """Ends in ``.`` and a TLD from the list (case-sensitive, as in the library)."""
    return any(name[i + 1:] in TLDS for i in range(len(name)) if name[i] == ".")


def _utf8_index(units: str, index: int) -> int:
    """``utf16IndexToUtf8Index``: bytes TextEncoder writes for ``units[:index]``."""
    return len(from_utf16(units[:index]).encode("utf-8", "replace"))


def _utf16_length(text: str) -> int:
    return len(utf16(text))


def detect_facets(text: str) -> tuple[Facet, ...]:
    """Every mention, link, tag and cashtag facet of ``text``, in the library's order."""
    units = utf16(text)
    facets: list[Facet] = []
    for match in _MENTION.finditer(units):
        handle = match.group(3)
        if not is_valid_domain(handle) and not handle.endswith(".test"):
            continue  # probably not a handle
        start = units.find(handle, match.start()) - 1
        facets.append(Facet(_utf8_index(units, start),
                            _utf8_index(units, start + len(handle) + 1), "mention", handle))
    # Matched case-insensitively on a masked copy, as JavaScript matches (see twitter.py).
    for match in _URL.finditer(units.translate(JS_CASE_MASK)):
        found = units[match.start(2):match.end(2)]
        uri = found
        if not uri.startswith("http"):
            start = match.start("domain")
            domain = units[start:match.end("domain")] if start >= 0 else ""
            if not domain or not is_valid_domain(domain):
                continue
            uri = f"https://{uri}"
        start = units.find(found, match.start())
        end = start + len(found)
        if uri[-1] in ".,;:!?":
            uri, end = uri[:-1], end - 1
        if uri.endswith(")") and "(" not in uri:
            uri, end = uri[:-1], end - 1
        facets.append(Facet(_utf8_index(units, start), _utf8_index(units, end), "link",
                            from_utf16(uri)))
    for found in _TAG.finditer(text):
        leading, tag = found.group(1), found.group(2)
        if not tag:
            continue
        tag = _TRAILING_PUNCTUATION.sub("", _JS_TRIM.sub("", tag))
        size = _utf16_length(tag)
        too_long = size > MAX_TAG_GRAPHEMES and len(_GRAPHEME.findall(tag)) > MAX_TAG_GRAPHEMES
        if size == 0 or too_long:
            continue
        index = _utf16_length(text[:found.start()]) + _utf16_length(leading)
        facets.append(Facet(_utf8_index(units, index), _utf8_index(units, index + 1 + size),
                            "tag", tag))
    for found in _CASHTAG.finditer(text):
        leading, ticker = found.group(1), found.group(2).upper()
        index = _utf16_length(text[:found.start()]) + _utf16_length(leading)
        facets.append(Facet(_utf8_index(units, index),
                            _utf8_index(units, index + 1 + len(ticker)), "tag", "$" + ticker))
    # RichText keeps them sorted by where they start (a stable sort).
    return tuple(sorted(facets, key=lambda facet: facet.byte_start))
