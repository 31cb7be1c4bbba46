"""UTM parameters on links that point at the site, and email-safe images.

Only links to the site are tagged: adding tracking parameters to someone
else's URL is rude and can break it. Recipient URLs (unsubscribe, web view)
are never passed through here, so they stay exactly as the outbox built them.
"""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Callable, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_HREF = re.compile(r'(<a\b[^>]*?\shref=")([^"]*)(")', re.IGNORECASE)
_IMG = re.compile(r"<img\b([^>]*?)\s*/?>", re.IGNORECASE)
_ALT = re.compile(r'\salt="([^"]*)"', re.IGNORECASE)
_WIDTH_VALUE = re.compile(r'\swidth=(["\']?)([^"\'\s>]*)\1', re.IGNORECASE)
_HEIGHT_VALUE = re.compile(r'\sheight=(["\']?)([^"\'\s>]*)\1', re.IGNORECASE)
_SRC = re.compile(r'\ssrc="([^"]*)"', re.IGNORECASE)

CONTENT_WIDTH = 536
"""600px container minus 2 × 32px padding."""


def is_site_link(url: str, site_url: str) -> bool:
    base = site_url.rstrip("/")
    return url == base or url.startswith(base + "/") or url.startswith(base + "?") or \
        url.startswith(base + "#")


def add_utm(url: str, site_url: str, params: Sequence[tuple[str, str]]) -> str:
    """``url`` with the UTM parameters it does not already carry, if it is the site's."""
    if not params or not is_site_link(url, site_url):
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {key for key, _ in query}
    extra = [(k, v) for k, v in params if k not in present]
    if not extra:
        return url
    return urlunsplit(parts._replace(query=urlencode([*query, *extra])))


def track_html(html: str, site_url: str, params: Sequence[tuple[str, str]]) -> str:
    """Tag every ``<a href>`` to the site in sanitised HTML (double-quoted attributes)."""
    if not params:
        return html

    def tag(match: re.Match[str]) -> str:
        url = htmllib.unescape(match.group(2))
        tracked = add_utm(url, site_url, params)
        if tracked == url:
            return match.group(0)
        return match.group(1) + htmllib.escape(tracked, quote=True) + match.group(3)

    return _HREF.sub(tag, html)


def _pixels(match: re.Match[str] | None) -> int | None:
    """A width/height attribute's value when it is a plain positive pixel count."""
    if match is None or not re.fullmatch(r"[0-9]{1,5}", match.group(2)):
        return None
    return int(match.group(2)) or None


def email_images(html: str, alt_fallback: str,
                 height_for: Callable[[str, int], int] | None = None) -> str:
    """Give every body image a width and height for Outlook and a non-empty alt.

    ``height_for(src, width)`` gives the height attribute matching ``width``
    (see :mod:`dispatch.render.images`); an explicit height is kept. CSS
    still says ``height:auto``, so the attributes only have to be in
    proportion, and the image stays fluid.
    """

    def fix(match: re.Match[str]) -> str:
        attrs = match.group(1)
        alt = _ALT.search(attrs)
        if alt is None:
            attrs += f' alt="{htmllib.escape(alt_fallback)}"'
        elif not alt.group(1).strip():
            attrs = attrs[:alt.start()] + f' alt="{htmllib.escape(alt_fallback)}"' + \
                attrs[alt.end():]
        width_match = _WIDTH_VALUE.search(attrs)
        height_match = _HEIGHT_VALUE.search(attrs)
        given_w = _pixels(width_match)
        given_h = _pixels(height_match)
        if given_w is not None and given_w <= CONTENT_WIDTH:
            if given_h is not None or height_for is None:
                return f"<img{attrs}>"
            attrs = _HEIGHT_VALUE.sub("", attrs)  # e.g. height="auto"
            width, height = given_w, None
        else:
            # No width, one that is not plain pixels, or one wider than the
            # column: the image renders at the column width; an author's
            # width and height still give its proportions.
            attrs = _HEIGHT_VALUE.sub("", _WIDTH_VALUE.sub("", attrs))
            width = CONTENT_WIDTH
            height = (max(1, round(width * given_h / given_w))
                      if given_w is not None and given_h is not None else None)
            attrs += f' width="{width}"'
        if height is None and height_for is not None:
            src = _SRC.search(attrs)
            height = height_for(htmllib.unescape(src.group(1)) if src else "", width)
        if height is not None:
            attrs += f' height="{height}"'
        return f"<img{attrs}>"

    return _IMG.sub(fix, html)
