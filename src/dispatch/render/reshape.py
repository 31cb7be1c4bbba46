"""Email-only changes to an article's HTML (the web pages keep theirs).

* Boxes become tables. Outlook for Windows renders with Word, which drops
  padding, borders and backgrounds on a ``<div>``; on a table cell it keeps
  them. The body's "Key takeaway" section (a ``div.key-takeaway``) becomes a
  one-cell table whose cell carries the box's style.
* Footnotes become plain references. A footnote marker links to ``#fn1`` and
  the source back to ``#fnref1``; in a message those anchors either leave for
  the website or do nothing (many clients rewrite or drop ids). The marker
  stays as a bracketed number matching the numbered Sources list, and the
  back-links go.
"""

from __future__ import annotations

import re

_BOX_OPEN = re.compile(r'<div class="key-takeaway">')
_DIV = re.compile(r"<div\b|</div>", re.IGNORECASE)
_MARKER = re.compile(r'<sup class="footnote-ref"><a\b[^>]*>(.*?)</a></sup>', re.DOTALL)
_BACKLINK = re.compile(r'\s*<a\b[^>]*class="footnote-backref"[^>]*>.*?</a>', re.DOTALL)

TABLE = ('<table role="presentation" class="{name}" width="100%" cellpadding="0" '
         'cellspacing="0" border="0"><tr><td class="{name}-cell">')
END_TABLE = "</td></tr></table>"


def box_tables(html: str) -> str:
    """Each ``<div class="key-takeaway">…</div>`` as a one-cell table."""
    out: list[str] = []
    at = 0
    for match in _BOX_OPEN.finditer(html):
        if match.start() < at:
            continue  # a box inside the box: left as it is
        depth, end = 1, -1
        for tag in _DIV.finditer(html, match.end()):
            depth += -1 if tag.group().startswith("</") else 1
            if depth == 0:
                end = tag.start()
                break
        if end < 0:
            break  # unbalanced: leave the rest untouched
        out += [html[at:match.start()], TABLE.format(name="key-takeaway"),
                html[match.end():end], END_TABLE]
        at = end + len("</div>")
    out.append(html[at:])
    return "".join(out)


def plain_footnotes(html: str) -> str:
    """Footnote markers as unlinked ``[n]``; back-links removed."""
    return _BACKLINK.sub("", _MARKER.sub(r'<sup class="footnote-ref">\1</sup>', html))


def for_email(html: str) -> str:
    return plain_footnotes(box_tables(html))
