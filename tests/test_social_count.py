"""Counting rules, and a check that twitter-text-parser is sound.

The X cases are a selection of twitter-text's published conformance cases
(``conformance/validate.yml``, sections ``WeightedTweetsCounterTest`` with the
v3 configuration's expectations in ``WeightedTweetsWithDiscountedEmojiCounterTest``):
text and expected ``weightedLength`` / ``valid`` as published there. Emoji are
written as escapes so no editor can drop a zero-width joiner.
"""

from __future__ import annotations

import pytest
import twitter_text

from dispatch.social.count import (
    bluesky_length,
    graphemes,
    linkedin_length,
    mastodon_length,
    threads_length,
    x_length,
    x_valid,
)

ZWJ = "\u200d"
FAMILY = ZWJ.join(["\U0001F468", "\U0001F469", "\U0001F467", "\U0001F466"])
CAT, MASK = "\U0001F431", "\U0001F637"
X_BLOCK = "xxxxxxxxxx-"
CJK_160 = ("故人西辞黄鹤楼，烟花三月下扬州。孤帆远影碧空尽，唯见长江天际流。"
           "朱雀桥边野草花，乌衣巷口夕阳斜。旧时王谢堂前燕，飞入寻常百姓家。"
           "朝辞白帝彩云间，千里江陵一日还。两岸猿声啼不住，轻舟已过万重山。"
           "泪湿罗巾梦不成，夜深前殿按歌声。红颜未老恩先断，斜倚薰笼坐到明。"
           "独在异乡为异客，每逢佳节倍思亲。遥知兄弟登高处，遍插茱萸少一人。")
PUNCT = ("This is a tweet with general punctuation characters: "
         "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200A\u200B "
         "‐ ‑ ‒ – — ― ‖  ‗ ‘ ’ ‚ ‛ “ ” „ ‟ ′ ″ ‴ ‵ ‶ ‷")

# (description, text, weightedLength, valid) — from the v3 section.
CONFORMANCE = [
    ("Regular Tweet with url", "Hi http://test.co", 26, True),
    ("Just url", "http://test.co", 23, True),
    ("Long tweet, overflow at char index 280", "285 chars-" + X_BLOCK * 25, 285, False),
    ("Long tweet with url in the middle",
     "285 chars- http://www.twitter.com/jack " + X_BLOCK * 24, 299, False),
    ("Long tweet with url at the end",
     X_BLOCK * 24 + " http://www.twitter.com/jack ", 289, False),
    ("10 url string, no overflow", "https://www.twitter.com/aloha " * 10, 240, True),
    ("160 CJK char, overflow at char index 140", CJK_160, 320, False),
    ("160 emoji char, overflow at char index 140", MASK * 160, 320, False),
    ("3 latin char + 160 CJK char", "the" + CJK_160, 323, False),
    ("282 chars with a normalized character", "282 chars-" + X_BLOCK * 24 + "xxxxx" + "A\u0301x",
     281, False),
    ("Count a mix of single byte single word, and double word unicode characters",
     "H" + CAT + "\u263a" + FAMILY, 7, True),
    ("Count unicode emoji chars inside the basic multilingual plane",
     "\U0001F637\U0001F47E\U0001F621\U0001F525\U0001F4A9", 10, True),
    ("Count unicode emoji chars outside the BMP with skin tone modifiers",
     "\U0001F64B\U0001F3FD" + "\U0001F468" + ZWJ + "\U0001F3A4", 4, True),
    ("Handle General Punctuation Characters with visible spaces, no ZWJ/ZWNJ", PUNCT, 110, True),
    ("Handle a 64 character domain without protocol",
     "randomurlrandomurlrandomurlrandomurlrandomurlrandomurlrandomurls.com", 68, True),
    ("140 family emoji", FAMILY * 140, 280, True),
    ("Emoji with a leading character in the latin range is counted as 2", "1\u20e3", 2, True),
    ("Unicode 10.0 emoji",
     "Unicode 10.0 emoji: \U0001F92A; \U0001F9D5; \U0001F9D5\U0001F3FE; "
     "\U0001F3F4\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F", 34, True),
    ("Unicode 9.0 emoji", "Unicode 9.0 emoji: \U0001F920; \U0001F483; \U0001F483\U0001F3FE",
     29, True),
]


@pytest.mark.parametrize(("description", "text", "weighted", "valid"), CONFORMANCE,
                         ids=[c[0] for c in CONFORMANCE])
def test_twitter_text_parser_matches_published_conformance(
        description: str, text: str, weighted: int, valid: bool) -> None:
    result = twitter_text.parse_tweet(text)
    assert result.weightedLength == weighted, description
    assert result.valid is valid, description


@pytest.mark.parametrize(("description", "text", "weighted", "valid"), CONFORMANCE,
                         ids=[c[0] for c in CONFORMANCE])
def test_our_x_count_matches_published_conformance(
        description: str, text: str, weighted: int, valid: bool) -> None:
    assert (x_length(text), x_valid(text)) == (weighted, valid), description


# What twitter-text 3.1.0 (the npm package, run by node) answers; twemoji-parser 11 knows
# the family but not the newer sequences, which count per emoji and joiner.
NEWER_ZWJ = [
    (ZWJ.join(["🧑", "🤝", "🧑"]), 8),      # people holding hands
    ("👁️" + ZWJ + "🗨️", 5),              # eye in speech bubble
    ("❤️" + ZWJ + "🔥", 5),                        # heart on fire
    ("🧔" + ZWJ + "♀️", 5),                        # woman with beard
    (FAMILY, 2),
]


@pytest.mark.parametrize(("text", "weighted"), NEWER_ZWJ)
def test_x_counts_zwj_sequences_as_twitter_text_does(text: str, weighted: int) -> None:
    assert x_length(text) == weighted


def test_x_refuses_what_twitter_text_refuses() -> None:
    for bad in ("\ufeff", "\ufffe", "\uffff"):
        assert not x_valid(f"fine {bad} text")
        assert x_valid("fine text")
    assert not x_valid("")
    assert not x_valid("a" * 281) and x_valid("a" * 280)


def test_mastodon_never_undercounts_links_its_own_pattern_reads_differently() -> None:
    # Mastodon adds schemes to twitter-text's pattern: such a link may cost 23.
    assert mastodon_length("ipfs://a.io") == 23
    assert mastodon_length("gemini://example.com/long/path/here/x") == 37
    # Its path cannot end in "=": the "=" counts after the 23.
    assert mastodon_length("https://example.com/a==") == 23 + 2
    assert mastodon_length("https://example.com/?a=") == 23  # a query may end in "="


@pytest.mark.parametrize(("text", "counted"), [
    ("hi @ann@social.example.org", "hi @ann"),                  # remote mention: @user
    ("@josé@example.com", "@josé@example.com"),                 # é after "@jos": no mention
    ("a=@user@example.com", "a=@user@example.com"),             # "=" before "@": no mention
    ("@ann@social.example@x", "@ann@social.example@x"),         # followed by "@": no mention
    ("@ann@ hi", "@ann@ hi"),
    ("x/@ann@example.com", "x/@ann@example.com"),
    ("(@ann@example.com)", "(@ann)"),
    ("@ann@mästodon.de", "@ann"),                               # Unicode domain is fine
])
def test_mastodon_shortens_only_what_its_mention_pattern_matches(text: str, counted: str) -> None:
    assert mastodon_length(text) == len(graphemes(counted))


def test_field_note_samples() -> None:
    assert (x_length(FAMILY), len(graphemes(FAMILY)), len(FAMILY.encode())) == (2, 1, 25)
    jp = "日本語のテキスト"
    assert (x_length(jp), bluesky_length(jp), len(jp.encode())) == (16, 8, 24)
    combining = "e\u0301"
    assert (x_length(combining), bluesky_length(combining), len(combining.encode())) == (1, 1, 3)
    long_url = "https://example.org/" + "a" * 88
    assert len(long_url) == 108
    assert x_length(long_url) == 23
    assert bluesky_length(long_url) == 108
    assert mastodon_length(long_url) == 23
    # "…" weighs 2 on X; "—" and curly quotes weigh 1; "€" 2.
    assert [x_length(c) for c in "…—“’€→•"] == [2, 1, 1, 1, 2, 2, 2]


def test_one_string_four_budgets() -> None:
    text = ("Key takeaway: cache your feed \U0001F9CA — read "
            "https://example.org/newsletter/2024/05/01/very-long-slug-here?utm=1 via "
            "@ann@social.example and example.org")
    assert len(text) == 146
    assert mastodon_length(text) == 87
    assert bluesky_length(text) == 146
    assert twitter_text.parse_tweet(text).weightedLength == 115
    # X counts what twitter-text counts: "social.example" is no link to it.
    assert x_length(text) == 115


def test_mastodon_rules() -> None:
    assert mastodon_length("see https://a.co") == 4 + 23  # short URLs cost 23 too
    assert mastodon_length("example.org") == len("example.org")  # bare domains are literal
    assert mastodon_length("hi @ann@social.example.org") == len("hi @ann")
    assert mastodon_length(FAMILY * 3) == 3
    # A link the extractor cannot see costs max(literal, 23).
    assert mastodon_length("https://x.example") == 23
    long_unknown = "https://journal.northfield-clinic.example/a-long-slug/"
    assert mastodon_length(long_unknown) == len(long_unknown)


def test_threads_counts_emoji_bytes_and_linkedin_utf16() -> None:
    assert threads_length("abc") == 3
    assert threads_length(MASK) == 4
    assert threads_length(FAMILY) == 25
    assert threads_length("日本") == 2
    assert linkedin_length("a" + MASK) == 3


def test_bluesky_graphemes_never_split_clusters() -> None:
    text = "👍🏽 e\u0301 🇬🇧 " + FAMILY
    clusters = graphemes(text)
    assert "".join(clusters) == text
    assert "🇬🇧" in clusters and "e\u0301" in clusters and FAMILY in clusters
