"""One article to one post per network, measured by that network's rule.

The post is ``BODY\\n\\nLINK`` plus, while they still fit, ``\\n#Tag #Tag``.
BODY is built from the source text (frontmatter override, else the Key
takeaway, else the summary):

1. Whole sentences, in order, while they fit together with the link.
2. If not even the first sentence fits, it is cut: the longest prefix of
   *atoms* (grapheme clusters, with every URL, domain, hashtag and mention
   one indivisible atom) that fits with a trailing "…", moved back to the
   last space unless that would throw away more than 40% of it (text with
   no spaces, such as CJK or one enormous word, is cut between graphemes).
3. The final text is measured again with the network's rule; it fits.

The link is never shortened or dropped: a link that cannot fit on its own
is an error for that article and network, not a broken post.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Callable
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import regex

from dispatch.errors import ContentError, Problem
from dispatch.models import Article
from dispatch.social.config import NetworkConfig
from dispatch.social.count import graphemes
from dispatch.social.networks import network
from dispatch.social.post import ComposedPost, Facet, LinkCard, Source
from dispatch.values import controls

ELLIPSIS = "…"
SEPARATOR = "\n\n"
# A cut that keeps less than this share of what would fit is worse than a
# mid-word cut (only possible when the text has almost no spaces).
MIN_WORD_CUT_SHARE = 0.6
MAX_CARD_DESCRIPTION = 300

_ATOM = regex.compile(
    r"https?://\S+"
    # A domain starts at a word start only: without the lookbehind every
    # position of a long run of letters would rescan the run (quadratic).
    r"|(?<![\p{L}\p{N}_-])(?:[\p{L}\p{N}_-]++\.)+\p{L}[\p{L}\p{N}-]+(?:/\S*)?"
    r"|[#@][\p{L}\p{N}_]+(?:@[\p{L}\p{N}.-]*[\p{L}\p{N}])?"
    r"|\X",
    regex.IGNORECASE,
)
_SENTENCE_END = regex.compile(r"(?<=[.!?…][)\]\"'”’»]*)\s+|(?<=[。！？])")
_CONTROL = controls.POST
# twitter-text refuses a post holding any of these (a byte-order mark pasted
# mid-text, or a noncharacter); no network shows them, so they are dropped.
_REFUSED = regex.compile("[\ufeff\ufffe\uffff]")
_TRAILING = set(" ,;:.-–—(/[{\"'“‘«")
_TAG_WORD = regex.compile(r"[\p{L}\p{N}\p{M}]+")
# Letters, digits, spaces, dashes, underscores and apostrophes: a tag made of
# these reads the same as a hashtag. "C++", "C#", "Node.js", "AT&T" do not:
# dropping the symbol would post a misleading "#C", so they get no hashtag.
_TAG_TEXT = regex.compile(r"[\p{L}\p{N}\p{M}\p{Pc}\p{Pd}\s'’ʼ]+")
# An apostrophe inside a word joins it: "don't panic" is #DontPanic, not #DonTPanic.
_APOSTROPHE = regex.compile(r"(?<=[\p{L}\p{M}])['’ʼ](?=\p{L})")
# Bluesky's tag facet allows at most 64 graphemes and 640 bytes (without the
# "#"); a tag that long is no use on any network, so it is dropped everywhere.
MAX_TAG_GRAPHEMES = 64
MAX_TAG_BYTES = 640

# Characters that mean nothing to CommonMark (no typographer, no linkify) in a
# paragraph of one line that starts with a letter: such a text is its own
# plain text. Most overrides are like that, and they need no Markdown parser
# (slow to import, so `dispatch check` would pay for it). A test checks that
# both ways agree.
_INERT = frozenset(" ,.;:?!'\"’‘“”%/()-")


def markdown_plain_text(text: str) -> str:
    """The words of a line of Markdown (emphasis and links dropped)."""
    if text[:1].isalpha() and all(c.isalnum() or c in _INERT for c in text):
        return " ".join(text.split())
    from dispatch.content import markdown as md

    return md.plain_text(md.parse(text).tokens)


def clean(text: str) -> str:
    """NFC, no control characters, no U+FEFF/U+FFFE/U+FFFF, whitespace collapsed."""
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub(" ", _REFUSED.sub("", text))
    return " ".join(text.split())


def source_text(article: Article, config: NetworkConfig) -> tuple[str, Source]:
    override = article.social_override(config.name) or article.social_override(config.network)
    if override:
        # Frontmatter text may carry Markdown emphasis or links: post the words.
        text = clean(markdown_plain_text(override))
        if text:
            return text, "override"
    if article.takeaway is not None:
        text = clean(article.takeaway.text)
        if text:
            return text, "takeaway"
    return clean(article.summary), "summary"


def link_for(article: Article, config: NetworkConfig) -> str:
    """The article URL with this network's UTM parameters added."""
    if not config.utm:
        return article.url
    parts = urlsplit(article.url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    for key, value in parse_qsl(config.utm, keep_blank_values=True):
        value = value.replace("{network}", config.name).replace("{slug}", article.slug)
        query = [(k, v) for k, v in query if k != key] + [(key, value)]
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote, safe="")))


def hashtag(tag: str) -> str | None:
    """``blood pressure`` → ``#BloodPressure``; None when no faithful hashtag exists
    (nothing taggable, all digits, a symbol that carries meaning, too long)."""
    tag = unicodedata.normalize("NFC", tag)
    if not _TAG_TEXT.fullmatch(tag):
        return None
    words = _TAG_WORD.findall(_APOSTROPHE.sub("", tag))
    if not words:
        return None
    if len(words) > 1:
        words = [w[:1].upper() + w[1:] for w in words]
    name = "".join(words)
    if name.isdigit():  # networks do not link all-digit tags
        return None
    if len(graphemes(name)) > MAX_TAG_GRAPHEMES or len(name.encode("utf-8")) > MAX_TAG_BYTES:
        return None
    return "#" + name


def fingerprint(article: Article, config: NetworkConfig) -> str:
    """Everything :func:`compose` depends on, hashed.

    A post that could not be written is composed again only once this
    changes (the network's table in dispatch.toml, the site URL, the article).
    """
    parts = [config.name, config.network, config.limit, config.utm, config.hashtags,
             config.language, article.url, article.slug, article.content_hash]
    return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()[:32]


def sentence_ends(text: str) -> list[int]:
    """Offsets where each sentence of ``text`` ends (the last one: ``len(text)``).

    Bodies are cut as ``text[:end]``, so joining never adds or drops a
    character (CJK sentences are not separated by spaces).
    """
    # ``text`` is cleaned (no leading space), so a match past 0 follows words.
    ends = [m.start() for m in _SENTENCE_END.finditer(text) if m.start() > 0]
    if text.strip():
        ends.append(len(text))
    return sorted(set(ends))


def _searchable(text: str, limit: int) -> str:
    """The part of ``text`` that could possibly appear in a post.

    Every atom costs at least 1 under every rule, so more than ``limit``
    atoms can never fit; the margin covers links a network would count as
    23 although we split them. Measuring is costly, so a 100 KB takeaway
    must not be measured whole twenty times.
    """
    cap = 2 * limit + 64
    if len(text) <= cap:
        return text
    atoms: list[str] = _ATOM.findall(text)
    return text if len(atoms) <= cap else "".join(atoms[:cap])


def layout(body: str, url: str, tags: tuple[str, ...] = ()) -> str:
    text = f"{body}{SEPARATOR}{url}" if body else url
    return f"{text}\n{' '.join(tags)}" if tags else text


def _cut(sentence: str, fits: Callable[[str], bool]) -> str:
    """The longest word-boundary prefix of ``sentence`` + "…" that fits, or ""."""
    atoms: list[str] = _ATOM.findall(sentence)

    def candidate(k: int) -> str:
        kept = atoms[:k]
        while kept and (kept[-1].isspace() or kept[-1] in _TRAILING):
            kept.pop()
        return "".join(kept) + ELLIPSIS if kept else ""

    lo, hi = 0, len(atoms)
    while lo < hi:  # largest k whose candidate fits (counting is nearly monotone)
        mid = (lo + hi + 1) // 2
        if fits(candidate(mid)):
            lo = mid
        else:
            hi = mid - 1
    best = lo
    if best < len(atoms):
        # Back off to the end of a word: a prefix followed by a space.
        boundary = next((j for j in range(best, 0, -1) if atoms[j].isspace()), 0)
        if boundary >= MIN_WORD_CUT_SHARE * best:
            best = boundary
    while best > 0 and not fits(candidate(best)):  # the re-measure decides
        best -= 1
    return candidate(best)


def compose(article: Article, config: NetworkConfig) -> ComposedPost:
    rule = network(config.network)
    url = link_for(article, config)
    text, source = source_text(article, config)

    def fits(body: str, tags: tuple[str, ...] = ()) -> bool:
        return rule.fits(layout(body, url, tags), config.limit)

    if not fits(""):
        raise ContentError([Problem(
            article.source, f"the link alone is {rule.measure(url)} by {config.network}'s rule, "
            f"over the limit of {config.limit}", None, f"social.{config.name}",
            "a shorter slug or fewer UTM parameters")])
    search = _searchable(text, config.limit)
    ends = [end for end in sentence_ends(text) if end <= len(search)]
    # Whole sentences, in order, while they fit: the longest fitting run of
    # sentences. A binary search, because measuring is the expensive part
    # (twitter-text's emoji scan) and a takeaway can have many sentences.
    lo, hi = 0, len(ends)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(text[:ends[mid - 1]].rstrip()):
            lo = mid
        else:
            hi = mid - 1
    while lo > 0 and not fits(text[:ends[lo - 1]].rstrip()):
        lo -= 1
    body = text[:ends[lo - 1]].rstrip() if lo else ""
    truncated = len(body) < len(text)
    if not body and search:
        body = _cut((text[:ends[0]] if ends else search).rstrip(), fits)

    tags: tuple[str, ...] = ()
    seen: set[str] = set()
    for tag in article.tags:
        name = hashtag(tag)
        if len(tags) >= config.hashtags or name is None or name.casefold() in seen:
            continue
        if fits(body, (*tags, name)):
            tags = (*tags, name)
            seen.add(name.casefold())

    final = layout(body, url, tags)
    if not rule.fits(final, config.limit):  # cannot happen; never post what does not fit
        raise AssertionError(f"composed {config.network} post does not fit")
    # What a network adds beyond the text is its declaration's business.
    facets = rule.facets(body, url, tags) if rule.facets else ()
    card = rule.card(article, url) if rule.card else None
    return ComposedPost(
        network=config.name, kind=config.network, slug=article.slug, text=final,
        length=rule.measure(final), limit=config.limit, url=url, source=source,
        truncated=truncated, language=config.language, hashtags=tags, facets=facets, card=card,
    )


def summary_card(article: Article, url: str) -> LinkCard:
    """A link card: the article's title, its summary cut to a card's length, its image."""
    description = article.summary
    if len(description) > MAX_CARD_DESCRIPTION:
        description = description[:MAX_CARD_DESCRIPTION].rsplit(" ", 1)[0] + ELLIPSIS
    return LinkCard(url, article.title, description, article.image)


def link_and_tag_facets(body: str, url: str, tags: tuple[str, ...]) -> tuple[Facet, ...]:
    """Byte offsets computed on the exact text :func:`layout` builds."""
    prefix = f"{body}{SEPARATOR}" if body else ""
    start = len(prefix.encode("utf-8"))
    end = start + len(url.encode("utf-8"))
    facets = [Facet(start, end, "link", url)]
    position = end + 1  # the "\n" before the tags
    for tag in tags:
        size = len(tag.encode("utf-8"))
        facets.append(Facet(position, position + size, "tag", tag[1:]))
        position += size + 1
    return tuple(facets)
