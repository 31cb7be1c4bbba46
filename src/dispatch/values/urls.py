"""URL rules, in one place: what counts as an absolute web URL, a local one,
and a URL safe to put in a header or an attribute as it is.

- :func:`is_absolute` — ``http://`` or ``https://``, a host, and no
  whitespace anywhere: settings (``[site] url``, ``[web] public_url``,
  ``[feeds] url``, API base URLs) and an article's ``canonical_url``.
- :func:`is_local` — ``http://`` to this machine (127.0.0.1, localhost,
  [::1]), with an optional port: the only plain-http address one-click
  unsubscribe accepts (for a site tried out locally).
- :func:`is_plain_uri` — an absolute http(s) URL made of RFC 3986 characters
  only, which HTML serialisers and header folding leave alone (links in a
  message are built by dispatch, so anything else is a bug or an attack).
- :func:`is_web_or_mail` — what a reader may be sent to from a link at all
  (``javascript:`` and friends never are).
"""

from __future__ import annotations

import re

ABSOLUTE = re.compile(r"^https?://[^/\s?#]+\S*$", re.IGNORECASE)
LOCAL = re.compile(r"^http://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]+)?(/|$)")
URI_CHARS = r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]"
"""RFC 3986's unreserved, reserved and percent characters."""
PLAIN_URI = re.compile(rf"^https?://{URI_CHARS}+$")
PLAIN_MAILTO = re.compile(rf"^mailto:{URI_CHARS}+$")
SCHEME = re.compile(r"^https?://", re.IGNORECASE)
IN_TEXT = re.compile(r"(?:(?<![a-z0-9+.-])[0-9+.-]*[a-z][a-z0-9+.-]*://|mailto:|www\.)\S",
                     re.IGNORECASE)
"""Something in running text a reader (or a mail client) would take for a link.

A scheme is only tried from the start of a run of scheme characters (the
lookbehind), and within the run the first letter is found without
backtracking: written as ``[a-z][a-z0-9+.-]*://`` the search retried from
every letter of a long word, so one 50,000-letter word took a minute."""


def is_absolute(value: str) -> bool:
    return ABSOLUTE.match(value) is not None


def is_local(value: str) -> bool:
    return LOCAL.match(value) is not None


def is_https_or_local(value: str) -> bool:
    return value.startswith("https://") or is_local(value)


def is_plain_uri(value: str) -> bool:
    return PLAIN_URI.match(value) is not None


def is_plain_mailto(value: str) -> bool:
    return PLAIN_MAILTO.match(value) is not None


def is_web_or_mail(value: str) -> bool:
    return value.lower().startswith(("http://", "https://", "mailto:"))


def host(url: str) -> str:
    """The host of an absolute URL, without port (``https://a.example:8443/x`` → ``a.example``)."""
    return SCHEME.sub("", url).split("/")[0].split(":")[0]
