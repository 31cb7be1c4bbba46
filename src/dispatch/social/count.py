"""Each network's own way of counting a post, and nothing else.

``len()`` is wrong everywhere: X weighs code points (CJK and emoji 2) and
counts any URL as 23 (:mod:`dispatch.social.twitter`, twitter-text's own
code); Mastodon counts grapheme clusters with http(s) URLs as 23 and a
mention its own pattern recognises as ``@user``; Bluesky counts graphemes
with URLs in full and also caps UTF-8 bytes; Threads counts emoji by their
UTF-8 bytes.

X is counted exactly as twitter-text 3.1.0 counts it, and
``tests/test_social_conformance.py`` holds us to that. For Mastodon one case
cannot be known for certain, and there we count the larger possible answer
so that a post we call "fits" always fits: a token that looks like an
http(s) link but that twitter-text's pattern does not take for one (a TLD
newer than its list, or a reserved one such as ``.example``) costs
``max(literal, 23)``, and so does a link with a scheme Mastodon adds
(``gemini://``, ``ipfs://``, …); a link path ending in ``=`` costs the
``=`` on top of the 23, as Mastodon's path pattern does not end in one.

Which matches are links at all is decided by the Ruby gem's rule, not the
JavaScript one (:func:`mastodon_takes_url`): the server measures URLs in
code points and adds what the domain grows by in punycode, where
twitter-text's JavaScript counts UTF-16 units, adds the protocol a second
time and never the punycode; and the server's IDNA (libidn, Unicode 3.2)
refuses a domain with a character it does not know, or one that nameprep
forbids, where JavaScript's punycode takes any. A link Mastodon does not
take is counted in full, as it counts it; so is one that Mastodon's wider
path pattern may carry on past the length it takes.
"""

from __future__ import annotations

import encodings.idna
import stringprep

import regex

from dispatch.social import tables_x, twitter

URL_COST = 23
BLUESKY_MAX_BYTES = 3000

_GRAPHEME = regex.compile(r"\X")
# Anything Mastodon might turn into a link; deliberately generous. Mastodon
# widens twitter-text's URL pattern with these schemes.
_LINKISH_HTTP = regex.compile(r"(?:https?|dat|dweb|ipfs|ipns|ssb|gopher|gemini)://\S+",
                              regex.IGNORECASE)
# Mastodon's Account::MENTION_RE and USERNAME_RE (Ruby): [[:word:]] is
# Letter, Mark, Decimal_Number, Connector_Punctuation; the username part is
# ASCII and case-insensitive, the domain part is not.
_RUBY_WORD = r"\p{L}\p{M}\p{Nd}\p{Pc}"
MASTODON_MENTION = regex.compile(
    rf"(?<![=/{_RUBY_WORD}])@(((?i:[a-z0-9_]+(?:[.-]+[a-z0-9_]+)*))"
    rf"(?:@[{_RUBY_WORD}]+(?:[.-]+[{_RUBY_WORD}]+)*)?)")
# twitter-text's end_mention_match: a mention followed by one of these is none.
_END_MENTION = regex.compile(rf"[@＠{tables_x.LATIN_ACCENT_CHARS}]|://")
_EMOJI = regex.compile(r"[\p{Extended_Pictographic}\p{Regional_Indicator}\u20e3\ufe0f]")


def graphemes(text: str) -> list[str]:
    """User-perceived characters (extended grapheme clusters, current Unicode)."""
    clusters: list[str] = _GRAPHEME.findall(text)
    return clusters


def x_length(text: str) -> int:
    """twitter-text 3.1.0's weighted length (``parseTweet(text).weightedLength``)."""
    return twitter.parse_tweet(text).weighted_length if text else 0


def x_valid(text: str) -> bool:
    """twitter-text's ``valid``: not empty, at most 280, no character it refuses."""
    return twitter.parse_tweet(text).valid


def _code_point_index(units: str, index: int) -> int:
    return len(twitter.from_utf16(units[:index]))


def mastodon_mentions(text: str) -> list[tuple[int, int, str]]:
    """(start, end, screen name) of each mention Mastodon's extractor keeps."""
    if "@" not in text and "＠" not in text:
        return []
    found = []
    for match in MASTODON_MENTION.finditer(text):
        if _END_MENTION.match(text, match.end()):
            continue  # "@ann@", "@josé": Mastodon does not take these for mentions
        found.append((match.start(1) - 1, match.end(1), match.group(1)))
    return found


# libidn splits a domain at these (its DOTP), as punycode.js does.
_IDNA_DOTS = regex.compile("[.\u3002\uff0e\uff61]")


def _libidn_label(label: str) -> str | None:
    """libidn's ToASCII of one label as the Ruby gem calls it (no flags):
    nameprep refusing unassigned code points, then punycode, 1-63 long."""
    if label.isascii():
        return label if 1 <= len(label) <= twitter.MAX_DOMAIN_LABEL_LENGTH else None
    if any(stringprep.in_table_a1(c) for c in label):
        return None  # unassigned in Unicode 3.2, which IDNA 2003 is tied to
    try:
        # RFC 3490's ToASCII with RFC 3491's nameprep (mapping, NFKC and
        # the prohibited and bidi checks, on Unicode 3.2 tables), as libidn.
        return encodings.idna.ToASCII(label).decode("ascii")
    except UnicodeError:
        return None


def mastodon_takes_url(url: str, protocol: str, domain: str) -> bool:
    """twitter-text's Ruby ``is_valid_domain``, which Mastodon's server
    runs on each match of the URL pattern (arguments in UTF-16 units, as
    :func:`dispatch.social.twitter.extract_urls` passes them)."""
    domain = twitter.from_utf16(domain)
    labels = [_libidn_label(label) for label in _IDNA_DOTS.split(domain)]
    if not domain or None in labels:
        return False
    grown = len(".".join(label or "" for label in labels)) - len(domain)
    # Code points (Ruby's String#length) and the protocol written once.
    return len(twitter.from_utf16(url)) + max(0, grown) <= twitter.MAX_URL_LENGTH


_REACH = regex.compile(r"\S*")


def _within_reach(text: str, start: int, end: int) -> bool:
    """Whether the link at ``text[start:end]`` is one for Mastodon however far
    its own pattern reaches. Mastodon's path takes any character but space,
    ``<>()?`` (twitter-text's stops at, say, Greek letters or emoji), so its
    match may run on past ours and be too long to be a link: then it counts
    the whole run, where we would count 23 and the rest."""
    reach = _REACH.match(text, end)
    if reach is None or reach.end() == end:
        return True
    # The domain is ours (the patterns share it); only the length can differ.
    domain = regex.split(r"[:/?#]", text[start:end].partition("://")[2], maxsplit=1)[0]
    return mastodon_takes_url(twitter.utf16(text[start:reach.end()]), "",
                              twitter.utf16(domain))


def mastodon_length(text: str) -> int:
    """Mastodon's StatusLengthValidator: graphemes, after every http(s) URL
    became 23 characters and every mention ``@user@domain`` became ``@user``."""
    if not text.strip():
        return 0
    units = twitter.utf16(text)
    entities: list[tuple[int, int, str | None]] = []
    for u in twitter.extract_urls(units, without_protocol=False, valid=mastodon_takes_url):
        start, end = _code_point_index(units, u.start), _code_point_index(units, u.end)
        if not _within_reach(text, start, end):
            continue  # counted in full, as Mastodon may count it
        entities.append((start, end, None))
    entities += mastodon_mentions(text)
    entities.sort(key=lambda entity: entity[0])
    kept: list[tuple[int, int, str | None]] = []
    for entity in entities:  # remove_overlapping_entities
        if not kept or kept[-1][1] <= entity[0]:
            kept.append(entity)
    pieces: list[str] = []
    position = 0
    for start, end, screen_name in kept:
        pieces.append(text[position:start])
        pieces.append("x" * URL_COST if screen_name is None
                      else "@" + screen_name.split("@")[0])
        position = end
    pieces.append(text[position:])
    spans = [(start, end) for start, end, screen_name in kept if screen_name is None]
    slack = 0
    for start, end in spans:
        # Mastodon's path may not end in "=" (twitter-text's may): it counts
        # those characters after the 23, so we do too.
        url = text[start:end]
        if "?" not in url:
            slack += len(url) - len(url.rstrip("="))
    for match in _LINKISH_HTTP.finditer(text):
        start, end = match.span()
        if not any(start < e and s < end for s, e in spans):
            slack += max(0, URL_COST - len(graphemes(match.group())))
    return len(graphemes("".join(pieces))) + slack


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
