"""Writing posts: sentences, cuts, hashtags, UTM, facets; and properties."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
import twitter_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatch.errors import ContentError
from dispatch.models import Article, Takeaway
from dispatch.social.compose import ELLIPSIS, SEPARATOR, clean, compose, hashtag, link_for
from dispatch.social.config import NETWORKS, NetworkConfig
from dispatch.social.count import (
    bluesky_length,
    graphemes,
    mastodon_length,
    threads_length,
    x_length,
)
from dispatch.social.twitter import has_invalid_characters

UTM = "utm_source={network}&utm_medium=social&utm_campaign={slug}"
URL = "https://journal.test/sleep/"


def article(takeaway: str | None = "Sleep matters. Keep a fixed wake-up time.", *,
            tags: tuple[str, ...] = (), summary: str = "The summary sentence.",
            social: tuple[tuple[str, str], ...] = (), slug: str = "sleep") -> Article:
    return Article(
        slug=slug, source=f"content/{slug}.md", title="Sleep and you",
        date=datetime(2026, 10, 6, 7, tzinfo=UTC), summary=summary, body_markdown="x",
        body_html="<p>x</p>", sources_html="", sources=(), url=f"https://journal.test/{slug}/",
        content_hash="h", reading_minutes=1, excerpt="x", tags=tags,
        takeaway=None if takeaway is None else Takeaway(f"<p>{takeaway}</p>", takeaway),
        social=social, image="https://journal.test/images/a.jpg",
    )


def network(name: str, limit: int | None = None, *, utm: str = "", hashtags: int = 2
            ) -> NetworkConfig:
    return NetworkConfig(name, name, "capture", limit or NETWORKS[name], utm, hashtags,  # type: ignore[arg-type]
                         "en")


def body_of(text: str, url: str) -> str:
    head, sep, _ = text.partition(url)
    assert sep, "the link is missing"
    return head[: -len(SEPARATOR)] if head.endswith(SEPARATOR) else head


def test_whole_takeaway_when_it_fits() -> None:
    post = compose(article(), network("mastodon"))
    assert post.text == f"Sleep matters. Keep a fixed wake-up time.{SEPARATOR}{URL}"
    assert post.source == "takeaway" and not post.truncated
    assert post.length == mastodon_length(post.text) <= post.limit


def test_whole_sentences_in_order_then_stop() -> None:
    first = "Short sleep is linked to higher blood pressure."
    second = "A regular wake-up time is the simplest place to start and " + "x " * 40 + "ok."
    post = compose(article(f"{first} {second} Third."), network("x", 120))
    assert post.text == f"{first}{SEPARATOR}{URL}"
    assert post.truncated
    assert twitter_text.parse_tweet(post.text).weightedLength <= 120


def test_first_sentence_cut_at_a_word_boundary_with_ellipsis() -> None:
    words = "Regularly sleeping under six hours is linked to higher blood pressure in adults"
    post = compose(article(words + "."), network("bluesky", 60))
    body = body_of(post.text, URL)
    assert body.endswith(ELLIPSIS)
    kept = body[: -len(ELLIPSIS)]
    assert words.startswith(kept) and words[len(kept)] == " "  # ends at a whole word
    assert bluesky_length(post.text) <= 60


def test_text_without_spaces_is_cut_between_graphemes() -> None:
    text = "日本語のテキスト" * 40
    post = compose(article(text), network("x", 100))
    body = body_of(post.text, URL)
    assert body.endswith(ELLIPSIS) and len(body) > 10
    assert text.startswith(body[:-1])
    assert twitter_text.parse_tweet(post.text).weightedLength <= 100


def test_urls_and_hashtags_in_the_text_are_never_split() -> None:
    inner = "https://example.org/a-very-long-path/that-goes-on-and-on/for-a-while"
    text = f"Read the guidance at {inner} and the #SleepHygiene notes today please friends"
    for limit in range(50, 140, 3):
        post = compose(article(text), network("bluesky", limit))
        body = body_of(post.text, URL)
        assert (inner in body) or ("https://" not in body), (limit, body)
        assert "#SleepHyg" not in body or "#SleepHygiene" in body
        assert bluesky_length(post.text) <= limit


def test_hashtags_camelcase_only_while_they_fit_and_up_to_the_maximum() -> None:
    assert hashtag("blood pressure") == "#BloodPressure"
    assert hashtag("sleep") == "#sleep"
    assert hashtag("COVID-19 vaccine") == "#COVID19Vaccine"
    assert hashtag("2024") is None and hashtag("—") is None
    tags = ("sleep", "blood pressure", "prevention")
    post = compose(article(tags=tags), network("mastodon", hashtags=2))
    assert post.text.endswith("\n#sleep #BloodPressure")
    assert post.hashtags == ("#sleep", "#BloodPressure")
    with_one = f"Sleep matters. Keep a fixed wake-up time.{SEPARATOR}{URL}\n#sleep"
    tight = compose(article(tags=tags), network("x", x_length(with_one) + 5))
    assert tight.hashtags == ("#sleep",) and tight.text == with_one


def test_hashtags_keep_their_meaning_or_are_left_out() -> None:
    assert hashtag("don't panic") == "#DontPanic"
    assert hashtag("don’t panic") == "#DontPanic"  # typographic apostrophe
    assert hashtag("rock 'n' roll") == "#RockNRoll"
    # Dropping the symbol would post a different, misleading tag.
    assert [hashtag(t) for t in ("C++", "C#", "Node.js", "AT&T", "50+")] == [None] * 5
    # Bluesky's tag facet takes at most 64 graphemes; a longer tag is left out.
    assert hashtag("a" * 64) == "#" + "a" * 64
    assert hashtag("a" * 65) is None
    assert hashtag("👩🏽‍⚕️" * 64) is None  # emoji are not taggable at all
    assert hashtag("é" * 64) == "#" + "é" * 64 and hashtag("é" * 65) is None
    post = compose(article(tags=("C++", "don't panic", "x" * 70, "sleep")),
                   network("bluesky", hashtags=3))
    assert post.hashtags == ("#DontPanic", "#sleep")
    raw = post.text.encode("utf-8")
    assert [raw[f.byte_start:f.byte_end].decode() for f in post.facets if f.kind == "tag"] == [
        "#DontPanic", "#sleep"]


def test_utm_parameters_and_existing_query() -> None:
    config = network("mastodon", utm=UTM)
    assert link_for(article(), config) == (
        "https://journal.test/sleep/?utm_source=mastodon&utm_medium=social&utm_campaign=sleep")
    other = replace(article(), url="https://journal.test/sleep/?lang=en#top")
    assert link_for(other, config) == ("https://journal.test/sleep/?lang=en&utm_source=mastodon"
                                       "&utm_medium=social&utm_campaign=sleep#top")
    assert link_for(article(), network("mastodon")) == URL


def test_sources_override_then_takeaway_then_summary() -> None:
    override = (("mastodon", "Our **new** guide: [read it](https://x.test)."),)
    post = compose(article(social=override), network("mastodon"))
    assert post.source == "override" and post.text.startswith("Our new guide: read it.")
    assert compose(article(social=override), network("x")).source == "takeaway"
    post = compose(article(None, summary="Dek   text\u0007 here."), network("x"))
    assert post.source == "summary" and post.text.startswith("Dek text here.")


def test_bluesky_facets_are_utf8_byte_offsets_and_a_card() -> None:
    text = "Schlüssel-Erkenntnis 🔑 日本語: gut schlafen."
    post = compose(article(text, tags=("sleep", "blood pressure")),
                   network("bluesky", utm=UTM))
    raw = post.text.encode("utf-8")
    link, *tags = post.facets
    assert raw[link.byte_start:link.byte_end].decode() == post.url == link.value
    assert link.byte_start != post.text.index(post.url)  # bytes, not code points
    assert [raw[t.byte_start:t.byte_end].decode() for t in tags] == ["#sleep", "#BloodPressure"]
    assert post.card is not None and post.card.uri == post.url
    assert post.card.title == "Sleep and you" and post.card.thumb.endswith("a.jpg")  # type: ignore[union-attr]


def test_a_link_that_cannot_fit_is_an_error_not_a_broken_post() -> None:
    long_slug = "s" * 300
    with pytest.raises(ContentError, match="the link alone"):
        compose(article(slug=long_slug), network("bluesky"))


# --- properties -----------------------------------------------------------

ZWJ_FAMILY = "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466"
PIECES = st.sampled_from([
    ZWJ_FAMILY, "👍🏽", "👩🏿‍🚀", "🏳️‍🌈", "🇬🇧", "e\u0301", "a\u0308\u0323", "日本語のテキスト",
    "مرحبا بالعالم", "שלום עולם", "…", "—", ". ", "! ", "。", " ", " ", "#tag", "@ann@social.test",
    "https://example.org/path?q=1", "example.com", "x" * 120, "Ünïcödé", "\u200b", "\t\n",
])
TEXTS = st.one_of(
    st.just(""),
    st.text(max_size=400),
    st.lists(st.one_of(PIECES, st.text(max_size=30)), max_size=80).map("".join),
    st.lists(PIECES, max_size=200).map("".join),
)
LIMITED = [network("x", utm=UTM), network("mastodon", utm=UTM), network("bluesky", utm=UTM),
           network("threads", utm=UTM), network("linkedin", utm=UTM),
           network("mastodon", 120, utm=UTM), network("bluesky", 160), network("x", 60)]


def fits_by_network_rule(config: NetworkConfig, text: str) -> bool:
    if config.network == "x":
        # x_length/x_valid are twitter-text's own answers (held to it by
        # tests/test_social_conformance.py); the twitter-text-parser package
        # disagrees on some texts, such as "0.ORG".
        return x_length(text) <= config.limit and not has_invalid_characters(text)
    if config.network == "mastodon":
        return mastodon_length(text) <= config.limit
    if config.network == "bluesky":
        return bluesky_length(text) <= config.limit and len(text.encode()) <= 3000
    if config.network == "threads":
        return threads_length(text) <= config.limit
    return len(text.encode("utf-16-le")) // 2 <= config.limit


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS, tags=st.lists(st.text(min_size=1, max_size=20), max_size=4))
def test_every_post_fits_keeps_the_link_and_whole_graphemes(text: str, tags: list[str]) -> None:
    source = clean(text) or "The summary sentence."  # nothing left: the summary is used
    source_clusters = graphemes(source)
    for config in LIMITED:
        post = compose(article(text, tags=tuple(tags)), config)
        assert fits_by_network_rule(config, post.text), (config.name, config.limit, post.text)
        assert post.length <= config.limit
        # The exact article URL, once, followed by nothing or the tag line.
        assert post.text.count(post.url) >= 1
        after = post.text.split(post.url, 1)[1]
        assert after == "" or after.startswith("\n#")
        body = body_of(post.text, post.url)
        core = body[: -len(ELLIPSIS)] if post.truncated and body.endswith(ELLIPSIS) else body
        clusters = graphemes(core)
        assert clusters == source_clusters[: len(clusters)], (config.name, body)
        if config.network == "bluesky":
            raw = post.text.encode("utf-8")
            assert [f for f in post.facets if f.kind == "link" and f.value == post.url
                    and raw[f.byte_start:f.byte_end] == post.url.encode("utf-8")]
            for facet in post.facets:
                shown = raw[facet.byte_start:facet.byte_end].decode()
                if facet.kind == "tag":  # "#tag", "＃tag", or a cashtag "$AAPL"/"$aapl"
                    assert shown[1:] == facet.value or shown.upper() == facet.value
                elif facet.kind == "mention":
                    assert shown == "@" + facet.value
            # Every hashtag dispatch added is a tag facet.
            tagged = {f.value for f in post.facets if f.kind == "tag"}
            assert {t[1:] for t in post.hashtags} <= tagged


_LINE = st.text(alphabet=st.sampled_from(
    "aZé9ßж ,.;:?!'\"’‘“”%/()-*_[]<>#&\\`|~\t\n=+1"), max_size=60)
# Mostly what the shortcut takes, so that it is exercised as often as not.
_PLAIN_LINE = st.text(alphabet=st.sampled_from("aZé9ßж ,.;:?!'\"’‘“”%/()-1"), max_size=60)


@given(text=st.one_of(_LINE, _PLAIN_LINE))
@settings(max_examples=400)
def test_an_override_without_markdown_reads_as_the_markdown_parser_reads_it(text: str) -> None:
    # The shortcut for plain text must give the parser's words exactly.
    from dispatch.content import markdown as md
    from dispatch.social.compose import markdown_plain_text

    assert markdown_plain_text(text) == md.plain_text(md.parse(text).tokens)
    line = "Colds spread: hand to face (often) - 20 seconds? “Yes”, it’s 100% true!"
    assert markdown_plain_text(line) == md.plain_text(md.parse(line).tokens) == line
