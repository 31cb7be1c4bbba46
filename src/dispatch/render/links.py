"""UTM parameters on links that point at the site, and email-safe images.

Only links to the site are tagged: adding tracking parameters to someone
else's URL is rude and can break it. Recipient URLs (unsubscribe, web view)
are never passed through here, so they stay exactly as the outbox built them.
"""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_HREF = re.compile(r'(<a\b[^>]*?\shref=")([^"]*)(")', re.IGNORECASE)
_IMG = re.compile(r"<img\b([^>]*?)\s*/?>", re.IGNORECASE)
_ALT = re.compile(r'\salt="([^"]*)"', re.IGNORECASE)
_WIDTH = re.compile(r"\swidth=", re.IGNORECASE)

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


def email_images(html: str, alt_fallback: str) -> str:
    """Give every body image a width for Outlook and a non-empty alt.

    The height is left to CSS (``height:auto``): the source pixels are
    unknown here and a guessed height attribute would distort the image.
    """

    def fix(match: re.Match[str]) -> str:
        attrs = match.group(1)
        alt = _ALT.search(attrs)
        if alt is None:
            attrs += f' alt="{htmllib.escape(alt_fallback)}"'
        elif not alt.group(1).strip():
            attrs = attrs[:alt.start()] + f' alt="{htmllib.escape(alt_fallback)}"' + \
                attrs[alt.end():]
        if not _WIDTH.search(attrs):
            attrs += f' width="{CONTENT_WIDTH}"'
        return f"<img{attrs}>"

    return _IMG.sub(fix, html)
