"""Each network's own way of counting a post, and nothing else.

``len()`` is wrong everywhere: X weighs code points (CJK and emoji 2) and
counts any URL as 23; Mastodon counts grapheme clusters with http(s) URLs as
23 and ``@user@domain`` as ``@user``; Bluesky counts graphemes with URLs in
full and also caps UTF-8 bytes; Threads counts emoji by their UTF-8 bytes.

Where we cannot know for certain what the network will decide, we count the
larger of the possible answers so that a post we call "fits" always fits.
The one such case is a token that looks like a link but that the pinned
twitter-text library does not recognise (a TLD newer than its list, or a
reserved one such as ``.example``): the network may count it as 23 or
literally, so it costs ``max(literal, 23)`` here.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import regex
import twitter_text

URL_COST = 23
BLUESKY_MAX_BYTES = 3000

_GRAPHEME = regex.compile(r"\X")
# Anything a network might turn into a link; deliberately generous.
_LINKISH_X = regex.compile(
    r"(?<![\p{L}\p{N}_-])(?:https?://)?(?:[\p{L}\p{N}_-]++\.)+\p{L}[\p{L}\p{N}-]+(?::\d+)?"
    r"(?:[/?#]\S*)?",
    regex.IGNORECASE,
)
_LINKISH_HTTP = regex.compile(r"https?://\S+", regex.IGNORECASE)
# Mastodon counts a remote mention by its local part only.
_REMOTE_MENTION = regex.compile(
    r"(?<![\p{L}\p{N}_/])@([\p{L}\p{N}_]+(?:[.-]+[\p{L}\p{N}_]+)*)@[\p{L}\p{N}.-]+\p{L}",
)
_EMOJI = regex.compile(r"[\p{Extended_Pictographic}\p{Regional_Indicator}\u20e3\ufe0f]")
_X_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))


def graphemes(text: str) -> list[str]:
    """User-perceived characters (extended grapheme clusters, current Unicode)."""
    clusters: list[str] = _GRAPHEME.findall(text)
    return clusters


def _x_weight(text: str) -> int:
    return sum(1 if any(lo <= ord(c) <= hi for lo, hi in _X_RANGES) else 2 for c in text)


def _overlaps(span: tuple[int, int], spans: list[tuple[int, int]]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in spans)


def _unrecognised_link_slack(text: str, recognised: list[tuple[int, int]],
                             pattern: regex.Pattern[str],
                             literal: Callable[[str], int]) -> int:
    slack = 0
    for match in pattern.finditer(text):
        if not _overlaps(match.span(), recognised):
            slack += max(0, URL_COST - literal(match.group()))
    return slack


def x_length(text: str) -> int:
    """twitter-text v3 weighted length (via twitter-text-parser), made safe
    for link-like tokens the library does not recognise."""
    if not text:
        return 0
    length: int = twitter_text.parse_tweet(text).weightedLength
    normalised = unicodedata.normalize("NFC", text)
    urls = [tuple(u["indices"]) for u in twitter_text.extract_urls_with_indices(normalised)]
    return length + _unrecognised_link_slack(normalised, urls, _LINKISH_X, _x_weight)


def mastodon_length(text: str) -> int:
    """Graphemes, every recognised http(s) URL as 23, ``@a@b`` as ``@a``."""
    entities = twitter_text.extract_urls_with_indices(text, extract_urls_without_protocol=False)
    spans: list[tuple[int, int]] = [tuple(e["indices"]) for e in entities]
    pieces: list[str] = []
    pos = 0
    for start, end in sorted(spans):
        pieces.append(text[pos:start])
        pieces.append("x" * URL_COST)
        pos = end
    pieces.append(text[pos:])
    countable = _REMOTE_MENTION.sub(r"@\1", "".join(pieces))
    slack = _unrecognised_link_slack(text, spans, _LINKISH_HTTP, lambda s: len(graphemes(s)))
    return len(graphemes(countable)) + slack


def bluesky_length(text: str) -> int:
    return len(graphemes(text))


def threads_length(text: str) -> int:
    """Meta counts emoji by their UTF-8 byte length; other text by character.

    Code points (not graphemes) for the rest, so a combining mark is never
    counted as free.
    """
    total = 0
    for cluster in graphemes(text):
        total += len(cluster.encode("utf-8")) if _EMOJI.search(cluster) else len(cluster)
    return total


def linkedin_length(text: str) -> int:
    """UTF-16 code units: never fewer than the characters LinkedIn counts."""
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True, slots=True)
class Rule:
    """How one network measures a post."""

    network: str
    measure: Callable[[str], int]
    max_bytes: int | None = None

    def fits(self, text: str, limit: int) -> bool:
        if self.max_bytes is not None and len(text.encode("utf-8")) > self.max_bytes:
            return False
        return self.measure(text) <= limit


RULES: dict[str, Rule] = {
    "x": Rule("x", x_length),
    "mastodon": Rule("mastodon", mastodon_length),
    "bluesky": Rule("bluesky", bluesky_length, BLUESKY_MAX_BYTES),
    "threads": Rule("threads", threads_length),
    "linkedin": Rule("linkedin", linkedin_length),
}


def measure(network: str, text: str) -> int:
    return RULES[network].measure(text)
