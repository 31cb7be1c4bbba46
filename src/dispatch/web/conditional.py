"""``If-None-Match`` as RFC 9110 §13.1.2 defines it, for every cached response.

The header is ``*`` or a comma-separated list of entity tags, each
``"opaque"`` or ``W/"opaque"``. A GET matches with the *weak* comparison:
the opaque parts are equal, whatever the ``W/`` prefixes. A substring test
gets this wrong both ways (``*`` never matches; a tag that merely contains
ours does), so the list is parsed. A header that does not parse is ignored:
answering with the full body is always safe, a wrong 304 is not.
"""

from __future__ import annotations

import re

_TAG = re.compile(r'(?:W/)?("[\x21\x23-\x7e\x80-\U0010ffff]*")')
_SPACE = " \t"


def opaque_tags(header: str) -> list[str] | None:
    """The quoted opaque part of each listed tag, ``["*"]`` for ``*``, or
    None when the header is not a valid list (empty elements are allowed, as
    in every RFC 9110 list)."""
    if header.strip(_SPACE) == "*":
        return ["*"]
    found: list[str] = []
    pos, end = 0, len(header)
    while True:
        while pos < end and (header[pos] in _SPACE or header[pos] == ","):
            pos += 1
        if pos >= end:
            return found
        match = _TAG.match(header, pos)
        if match is None:
            return None
        found.append(match.group(1))
        pos = match.end()
        while pos < end and header[pos] in _SPACE:
            pos += 1
        if pos < end and header[pos] != ",":
            return None


def none_match(header: str | None, etag: str) -> bool:
    """True when ``If-None-Match: header`` names ``etag``: answer 304."""
    if header is None:
        return False
    tags = opaque_tags(header)
    if not tags:
        return False
    return tags == ["*"] or etag.removeprefix("W/") in tags
