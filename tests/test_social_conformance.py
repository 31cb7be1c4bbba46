"""dispatch's counting and facets against the networks' own code.

X and Bluesky: the official JavaScript libraries, pinned in tests/js
(twitter-text 3.1.0's ``parseTweet``; @atproto/api's ``RichText``:
``graphemeLength`` and ``detectFacetsWithoutResolution``), run by node over a
seeded corpus of 1,200 texts (tests/social_corpus.py); there must be no
disagreement at all. Mastodon's server is Ruby, so its rule is checked
against :class:`MastodonValidator` below, a line-by-line port of
``StatusLengthValidator#countable_text`` and ``Extractor``'s mention
extraction (``Account::MENTION_RE``, twitter-text's ``end_mention_match``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import regex
from tests.social_corpus import SIZE, corpus, node_missing_reason, reference

from dispatch.social.bsky_facets import detect_facets
from dispatch.social.compose import clean
from dispatch.social.count import bluesky_length, mastodon_length, x_length, x_valid
from dispatch.social.twitter import extract_urls, from_utf16, utf16

MISSING = node_missing_reason()
needs_node = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return corpus()


@pytest.fixture(scope="module")
def answers(texts: list[str]) -> list[dict[str, Any]]:
    if MISSING is not None:
        pytest.skip(MISSING)
    return reference(texts)


def disagreements(texts: list[str], ours: Callable[[str], object],
                  theirs: list[object]) -> list[tuple[str, object, object]]:
    return [(text, mine, their) for text, their in zip(texts, theirs, strict=True)
            if (mine := ours(text)) != their]


def test_the_corpus_is_large_and_holds_the_hard_cases(texts: list[str]) -> None:
    assert len(texts) == SIZE >= 1000
    assert len(set(texts)) > 0.95 * len(texts)
    joined = "".join(texts)
    for needle in ("\U0001F9D1\u200d\U0001F91D\u200d\U0001F9D1", "\ufeff", "\ufffe", "\uffff",
                   "e\u0301", "日本語", "https://", "t.co/", "@josé@example.com",
                   "a=@user@example.com", "#", "$AAPL"):
        assert needle in joined, needle


@needs_node
def test_x_length_and_validity_agree_with_twitter_text(
        texts: list[str], answers: list[dict[str, Any]]) -> None:
    wrong = disagreements(texts, lambda t: (x_length(t), x_valid(t)),
                          [(a["x"]["weightedLength"], a["x"]["valid"]) for a in answers])
    assert wrong == []
    # The corpus does exercise what matters: invalid texts and long ones.
    assert sum(not a["x"]["valid"] for a in answers) > 50
    assert any(a["x"]["weightedLength"] > 280 for a in answers)


@needs_node
def test_bluesky_length_agrees_with_richtext(texts: list[str],
                                            answers: list[dict[str, Any]]) -> None:
    wrong = disagreements(texts, bluesky_length,
                          [a["bluesky"]["graphemeLength"] for a in answers])
    assert wrong == []


def _richtext_facets(facets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # RichText marks only mention facets with a top-level $type; the record
    # does not need it.
    return [{"index": f["index"], "features": f["features"]} for f in facets]


@needs_node
def test_bluesky_facets_agree_with_richtext(texts: list[str],
                                           answers: list[dict[str, Any]]) -> None:
    wrong = disagreements(texts, lambda t: [f.as_bluesky() for f in detect_facets(t)],
                          [_richtext_facets(a["bluesky"]["facets"]) for a in answers])
    assert wrong == []
    kinds = {f["features"][0]["$type"].rpartition("#")[2]
             for a in answers for f in a["bluesky"]["facets"]}
    assert kinds == {"link", "mention", "tag"}


@needs_node
def test_cleaned_text_is_never_refused_by_x(texts: list[str]) -> None:
    """What compose posts (cleaned text) never holds a character X refuses."""
    cleaned = [clean(t) for t in texts if any(c in t for c in "\ufeff\ufffe\uffff")]
    assert cleaned
    shortened = [t[:100] for t in cleaned]
    answers = reference(shortened)
    assert [a["x"]["valid"] for a in answers] == [x_valid(t) for t in shortened]
    assert all(a["x"]["valid"] for a in answers if 0 < a["x"]["weightedLength"] <= 280)


# --- Mastodon ---------------------------------------------------------------

class MastodonValidator:
    """Mastodon's StatusLengthValidator, ported statement by statement.

    Ruby (app/validators/status_length_validator.rb, app/lib/extractor.rb,
    app/models/account.rb)::

        USERNAME_RE = /[a-z0-9_]+([.-]+[a-z0-9_]+)*/i
        MENTION_RE  = %r{(?<![=/[:word:]])@((#{USERNAME_RE})(?:@[[:word:]]+([.-]+[[:word:]]+)*)?)}

        def countable_text(str)
          return '' if str.blank?
          entities = Extractor.remove_overlapping_entities(
            Extractor.extract_urls_with_indices(str, extract_url_without_protocol: false) +
            Extractor.extract_mentions_or_lists_with_indices(str))
          rewrite_entities(str, entities) do |entity|
            if entity[:url] then URL_PLACEHOLDER
            elsif entity[:screen_name] then "@#{entity[:screen_name].split('@').first}"
            end
          end
        end

    and the length is ``countable_text(text).each_grapheme_cluster.size``.
    URLs come from twitter-text's extractor (here the 3.1.0 one dispatch
    ports, whose pattern the Ruby gem shares for http(s) links).
    """

    WORD = r"[\p{L}\p{M}\p{Nd}\p{Pc}]"  # Onigmo's [[:word:]]
    USERNAME_RE = r"(?i:[a-z0-9_]+([.-]+[a-z0-9_]+)*)"
    MENTION_RE = regex.compile(
        rf"(?<![=/\p{{L}}\p{{M}}\p{{Nd}}\p{{Pc}}])@(({USERNAME_RE})(?:@{WORD}+([.-]+{WORD}+)*)?)")
    AT_SIGNS = regex.compile("[@＠]")
    LATIN_ACCENTS = ("\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u00ff\u0100-\u024f\u0253\u0254\u0256"
                     "\u0257\u0259\u025b\u0263\u0268\u026f\u0272\u0289\u028b\u02bb\u0300-\u036f"
                     "\u1e00-\u1eff")
    END_MENTION_MATCH = regex.compile(rf"\A(?:[@＠]|[{LATIN_ACCENTS}]|://)", regex.IGNORECASE)
    URL_PLACEHOLDER = "x" * 23

    def extract_mentions_or_lists_with_indices(self, text: str) -> list[dict[str, Any]]:
        if not self.AT_SIGNS.search(text):
            return []
        possible_entries = []
        for match in self.MENTION_RE.finditer(text):
            after = text[match.end():]
            if not self.END_MENTION_MATCH.search(after):
                possible_entries.append({"screen_name": match.group(1),
                                         "indices": [match.start(1) - 1, match.end(1)]})
        return possible_entries

    def extract_urls_with_indices(self, text: str) -> list[dict[str, Any]]:
        # twitter-text's pattern (checked against the JavaScript above), with
        # the Ruby gem's is_valid_domain in place of the JavaScript's.
        units = utf16(text)
        return [{"url": u.url, "indices": [len(from_utf16(units[:u.start])),
                                           len(from_utf16(units[:u.end]))]}
                for u in extract_urls(units, without_protocol=False,
                                      valid=lambda url, _, domain: _ruby_takes(
                                          from_utf16(url), from_utf16(domain)))]

    @staticmethod
    def remove_overlapping_entities(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
        entities = sorted(entities, key=lambda e: e["indices"][0])
        kept: list[dict[str, Any]] = []
        for entity in entities:
            if kept and kept[-1]["indices"][1] > entity["indices"][0]:
                continue
            kept.append(entity)
        return kept

    @staticmethod
    def rewrite_entities(text: str, entities: list[dict[str, Any]],
                         block: Callable[[dict[str, Any]], str]) -> str:
        chars = list(text)
        result: list[str] = []
        index = 0
        for entity in sorted(entities, key=lambda e: e["indices"][0]):
            result.extend(chars[index:entity["indices"][0]])
            result.append(block(entity))
            index = entity["indices"][1]
        result.extend(chars[index:])
        return "".join(result)

    def countable_text(self, text: str) -> str:
        if not text.strip():
            return ""
        urls = self.extract_urls_with_indices(text)
        entities = self.remove_overlapping_entities(
            urls + self.extract_mentions_or_lists_with_indices(text))
        return self.rewrite_entities(text, entities, lambda e: self.URL_PLACEHOLDER if "url" in e
                                     else "@" + e["screen_name"].split("@")[0])

    def length(self, text: str) -> int:
        return len(regex.findall(r"\X", self.countable_text(text)))


def test_mastodon_length_agrees_with_its_validator(texts: list[str]) -> None:
    validator = MastodonValidator()
    # dispatch adds max(0, 23 - literal) for an http(s) token the URL pattern
    # does not recognise (it may be a link to a newer TLD); compare on the
    # texts without one, and check the others are never counted shorter.
    plain = [t for t in texts if not regex.search("https?://", t, regex.IGNORECASE)]
    assert len(plain) > 300
    assert disagreements(plain, mastodon_length, [validator.length(t) for t in plain]) == []
    for text in texts:
        assert mastodon_length(text) >= validator.length(text)


# Links of every length and shape a post may carry: twitter-text's pattern
# (which Mastodon's server shares) must find the same ones as the reference.
SLUG = "https://journal.example.com/"
LONG_LINKS = [
    *(f"Read {SLUG}{'a' * n} now" for n in (100, 400, 2000, 4060, 4061, 4062, 4068, 5000)),
    *(f"Read https://{'b' * n}.com/x now" for n in (62, 63, 64, 100)),
    "Read https://" + ".".join(["c" * 60] * 4) + "x.com/ now",
    "See https://en.wikipedia.org/wiki/Sleep_(disambiguation) and",
    "(see https://example.com/a_(b)_c) and https://example.com/(x))",
    "Go to https://example.com/page. Then https://example.com/p, or https://example.com/q?!",
    "\"https://example.com/quoted\" and 'https://example.com/single' and <https://example.com/>",
    "Visit https://münchen.de/stadt and https://" + "ü" * 40 + ".de/x",
    "Visit https://münchen.de/" + "ü" * 300,
    "IDN near the limit https://" + "ü" * 20 + ".de/" + "a" * 4040,
    "https://a.com/" + "e" * 5000 + " https://b.com/x",
    "https://example.com/" + "\U0001F600" * 10 + " and https://i\u2764.ws/x",
]


@needs_node
def test_links_agree_with_twitter_text_however_long_or_odd() -> None:
    """Every link twitter-text finds, where it finds it, for the hard
    shapes: long slugs and domains (its length and label limits), brackets,
    trailing punctuation, IDN domains."""
    texts = LONG_LINKS + [t for t in corpus() if "://" in t]
    theirs = [[(u["url"], u["indices"]) for u in a["urls"]] for a in reference(texts)]

    def ours(text: str) -> list[tuple[str, list[int]]]:
        return [(from_utf16(u.url), [u.start, u.end])
                for u in extract_urls(utf16(text), without_protocol=False)]

    assert disagreements(texts, ours, theirs) == []
    found = [len(u) for u in theirs[:len(LONG_LINKS)]]
    assert 0 in found and max(found) > 1  # texts with no link and with several


def _ruby_takes(url: str, domain: str) -> bool:
    """The Ruby gem's is_valid_domain, which Mastodon's server runs, read
    from its source: libidn's toASCII (IDNA 2003: nameprep on Unicode 3.2,
    unassigned code points refused, labels 1-63), then the URL's length in
    code points, plus what the domain grew by in punycode, at most 4096."""
    import stringprep

    if any(stringprep.in_table_a1(c) for c in domain):
        return False
    try:
        encoded = domain.encode("idna")
    except UnicodeError:
        return False
    return len(url) + max(0, len(encoded) - len(domain)) <= 4096


def _mastodon_link(url: str) -> str:
    return f"see {url} ok"


@pytest.mark.parametrize(("url", "takes"), [
    (SLUG + "a" * 100, True),
    (SLUG + "a" * 400, True),
    (SLUG + "a" * 2000, True),
    # 4096 code points: a link to the Ruby gem; twitter-text's JavaScript
    # counts the protocol twice and refuses it.
    (SLUG + "a" * (4096 - len(SLUG)), True),
    (SLUG + "a" * (4097 - len(SLUG)), False),
    ("https://" + "b" * 63 + ".com/" + "p" * 50, True),
    ("https://" + "b" * 64 + ".com/" + "p" * 50, False),
    # The punycode form is what must fit: "ü" * 40 grows by 6 there, so
    # 4090 code points are a link and 4091 are not (an ASCII domain's are).
    ("https://" + "ü" * 40 + ".de/" + "a" * (4090 - 52), True),
    ("https://" + "ü" * 40 + ".de/" + "a" * (4091 - 52), False),
    ("https://" + "u" * 40 + ".de/" + "a" * (4091 - 52), True),
    ("https://münchen.de/" + "p" * 300, True),
    ("https://i\u2764.ws/" + "p" * 100, True),
    # Unknown to Unicode 3.2 (U+0242, 2006), or mixing directions: libidn refuses.
    ("https://exa\u0242mple.com/" + "p" * 100, False),
    ("https://a\u05d0.com/" + "p" * 100, False),
    # Mastodon's path takes Greek letters (twitter-text's stops before them):
    # the link it sees is 4,120 long and no link, so it counts all of it.
    ("https://example.com/" + "a" * 4000 + "\u03b1" * 100, False),
])
def test_mastodon_counts_a_link_as_its_server_does(url: str, takes: bool) -> None:
    """A link the server takes costs 23, one it does not costs what it holds."""
    text = _mastodon_link(url)
    domain = url.split("/")[2]
    assert _ruby_takes(url, domain) is takes
    expected = len("see  ok") + (23 if takes else len(url))
    assert mastodon_length(text) == expected
    if "\u03b1" not in url:  # the port has twitter-text's path, not Mastodon's wider one
        assert MastodonValidator().length(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("@josé@example.com", len("@josé@example.com")),
    ("a=@user@example.com", len("a=@user@example.com")),
    ("@ann@social.example@", len("@ann@social.example@")),
    ("hi @ann@social.example.org", len("hi @ann")),
    ("see https://example.com/a/long/path", 4 + 23),
])
def test_mastodon_validator_port_reads_the_issue_cases(text: str, expected: int) -> None:
    assert MastodonValidator().length(text) == expected == mastodon_length(text)


# --- composed posts, measured by the networks' own code ------------------------

def _article(takeaway: str) -> Any:
    from tests.test_social_compose import article

    return article(takeaway, tags=("sleep", "blood pressure"))


def _network(name: str) -> Any:
    from tests.test_social_compose import network

    return network(name)


HANDS = "\U0001F9D1\u200d\U0001F91D\u200d\U0001F9D1"
EYE = "\U0001F441\ufe0f\u200d\U0001F5E8\ufe0f"


@needs_node
def test_composed_x_posts_fit_by_twitter_text() -> None:
    from dispatch.social.compose import compose

    takeaways = [
        f"Together {HANDS} we sleep better {EYE}. " * 12,
        (HANDS * 60) + ".",
        "Key\ufefftakeaway: a byte-order mark\ufffe and a noncharacter\uffff never reach X. " * 5,
        "Sleep matters. " + "日本語のテキスト。" * 20,
    ]
    posts = [compose(_article(t), _network("x")) for t in takeaways]
    answers = reference([p.text for p in posts])
    for post, answer in zip(posts, answers, strict=True):
        assert answer["x"]["valid"], post.text
        assert answer["x"]["weightedLength"] == post.length <= 280
    assert not any(c in posts[2].text for c in "\ufeff\ufffe\uffff")


def test_composed_mastodon_posts_fit_by_its_validator() -> None:
    from dispatch.social.compose import compose

    validator = MastodonValidator()
    for mention in ("@josé@example.com", "a=@user@example.com", "@ann@social.example@x"):
        post = compose(_article(f"Ask {mention} about sleep. " * 40), _network("mastodon"))
        assert validator.length(post.text) == post.length <= 500, post.text
