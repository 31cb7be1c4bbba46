r"""Control characters, in one place: which ones each kind of text refuses or drops.

The classes differ on purpose, and each says why:

- :data:`LINE_BREAK` — everything that ends a line for Python's email
  package or some mail clients (CR, LF, VT, FF, FS/GS/RS, NEL, U+2028/2029).
  In a header value it would start a header of its own (injection).
- :data:`CONTROL` — C0, DEL and C1: never printable.
- :data:`ONE_LINE` — :data:`CONTROL` plus the Unicode line and paragraph
  separators: what a one-line value (a title, a sender name, a header, a
  setting that becomes one) must not hold.
- :data:`BODY` — what is removed from an article body: C0 except TAB, LF and
  CR, and DEL. Text keeps its lines and tabs.
- :data:`XML_ILLEGAL` — what XML 1.0 forbids or discourages in a feed: C0
  except TAB/LF/CR, DEL and C1, lone surrogates, U+FFFE/FFFF.
- :data:`BIDI` — bidirectional embeddings, overrides and isolates
  (U+202A-202E, U+2066-2069): invisible, they reorder what follows, so a
  title could read differently from what was typed; refused in text that
  reaches headers, feeds and posts.
- :data:`POST` — what a social post replaces by a space: :data:`ONE_LINE`
  plus surrogates and private-use characters (the networks show them as
  boxes or refuse the post).
"""

from __future__ import annotations

import re

LINE_BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
LINE_BREAK = re.compile(f"[{LINE_BREAKS}]")
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
BODY = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
POST = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ue000-\uf8ff"
                  "\U000f0000-\U000ffffd\U00100000-\U0010fffd]")


def has_line_break(value: str) -> bool:
    return LINE_BREAK.search(value) is not None


def is_one_line(value: str) -> bool:
    """No control character and no line or paragraph separator."""
    return ONE_LINE.search(value) is None
