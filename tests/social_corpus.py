"""A seeded corpus of post texts that are hard to count, and the JavaScript
reference run over it.

Used by tests/test_social_conformance.py and bench/social_conformance.py.
Pieces are the kinds of text a Key takeaway holds and a counter gets wrong:
emoji ZWJ sequences (old and new), skin tones, flags, keycaps, CJK, combining
marks, RTL text, links with and without a scheme (known, unknown and
internationalised TLDs, t.co, parentheses, trailing punctuation), mentions
in Bluesky's and Mastodon's forms, hashtags and cashtags, characters X
refuses, and unusual spaces.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

JS_DIR = Path(__file__).parent / "js"
SEED = 12
SIZE = 1200

ZWJ = "\u200d"
EMOJI = [
    "🙂", "🔥", "🧊", "❤️", "☺", "✅", "⌚", "👍🏽", "👋🏿", "🇬🇧", "🇯🇵", "🇺🇳",
    "1\u20e3", "#\ufe0f\u20e3",
    ZWJ.join(["👨", "👩", "👧", "👦"]),           # family, known to twemoji 11
    ZWJ.join(["🧑", "🤝", "🧑"]),                  # people holding hands (Emoji 12)
    "👁\ufe0f" + ZWJ + "🗨\ufe0f",                 # eye in speech bubble
    "❤\ufe0f" + ZWJ + "🔥",                        # heart on fire (Emoji 13.1)
    "🧔" + ZWJ + "♀\ufe0f",                        # woman with beard (13.1)
    "👩🏽" + ZWJ + "💻", "🏳\ufe0f" + ZWJ + "🌈", "🏴" + ZWJ + "☠\ufe0f",
    "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # Scotland
    "🫠", "🫶🏽", "🪿", "🐦" + ZWJ + "🔥", "🙂" + ZWJ, ZWJ + "🙂", "\ufe0f",
    "🧑🏻" + ZWJ + "🤝" + ZWJ + "🧑🏿",
]
WORDS = [
    "sleep", "matters", "Blood", "pressure", "a", "the", "Key", "takeaway:", "don't",
    "e\u0301te\u0301", "naïve", "Schlüssel", "Ĳssel", "café", "straße", "ünïcödé", "ﬁne",
    "x" * 40, "—", "…", "“quoted”",
    "€5", "→", "•", "(see", "this)", "[note]", "1.5", "3.14", "a.b", "end.", "why?", "wow!",
    "日本語のテキスト", "故人西辞黄鹤楼", "한국어", "ｆｕｌｌｗｉｄｔｈ",
    "עברית", "العربية", "हिन्दी",
    "क्षत्रिय", "ไทย", "ຂ", "Ελληνικά", "Русский", "ქართული", "a\u0300\u0301\u0302",
    "Z\u0351\u0352\u0353", "\u1100\u1161\u11a8",
]
LINKS = [
    "https://example.com", "https://example.com/path?q=1&r=2#frag", "http://sub.domain.co.uk/x",
    "example.org", "example.org/post", "www.example.net/a_b",
    "journal.northfield-clinic.example/sleep/",
    "https://journal.northfield-clinic.example/sleep/?utm_source=x", "t.co/abc123",
    "https://t.co/abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ", "https://t.co/short?x=1",
    "https://en.wikipedia.org/wiki/Sleep_(disambiguation)", "(https://example.com/a)",
    "https://example.com.", "example.com,", "HTTP://EXAMPLE.COM/UP", "Example.COM",
    "https://münchen.de/straße", "münchen.de", "例え.jp", "日本.com", "xn--mnchen-3ya.de",
    "http://127.0.0.1:8000/x", "https://example.com:8080/p", "foo.bar", "a.b.c.d.e.museum",
    "https://example.com/" + "a" * 90, "bsky.app/profile/alice", "https://example.com/😀",
    "mailto:someone@example.com", "someone@example.com", "https://example.com/a)b", "ex-ample.io",
    "https://xn--e1afmkfd.xn--p1ai/путь", "правительство.рф", "test.test", "a_b.com",
    "1example.com",
    # Letters Python's case-insensitive matching pairs with ASCII and JavaScript's does not.
    "httpſ://example.com", "a.\u0130stanbul", "exampſe.com", "example.\u212aim", "ıt.com",
    "https://T.CO/abc?x=1", "exampl\u212be.com/x",
]
MENTIONS = [
    "@alice", "@alice.bsky.social", "@bob.test", "@carol.example", "@dave.com.",
    "@ann@social.example",
    "@ann@social.example.org", "@josé@example.com", "a=@user@example.com", "@user@example.com@",
    "@ann@", "@x@y@z", "x/@ann@example.com", "(@alice.bsky.social)", "@UPPER.BSKY.SOCIAL",
    "@under_score", "@a-b.c-d.com", "＠fullwidth", "@ann@social.example://", "@ann@mästodon.de",
    "@ann@example.com/path", "me@example.com",
]
TAGS = [
    "#tag", "#BloodPressure", "#123", "#tag!", "#tag.", "＃全角", "#café", "#🙂", "#a_b", "#日本語",
    "#" + "long" * 17, "#" + "é" * 70, "#\ufe0fx", "#tag#tag", "#tag-with-dash", "#ta\u200dg",
    "$AAPL", "$aapl", "$A1", "$TOOLONG", "($MSFT)", "$BRK.", "#", "##", "#1a", "#’quote",
]
REFUSED = ["\ufeff", "\ufffe", "\uffff", "a\ufeffb"]
ODD = ["\u200e", "\u202a", "\u2066", "\u00ad", "\u200b", "\u2060", "\t", "\u3000", "\u00a0"]
SEPARATORS = [" "] * 12 + ["", "\n", "\n\n", "  ", "\u00a0", "\u3000", ", ", ". "]
KINDS = [(WORDS, 10), (EMOJI, 4), (LINKS, 3), (MENTIONS, 2), (TAGS, 2), (REFUSED, 0.3),
         (ODD, 0.5)]


def corpus(size: int = SIZE, seed: int = SEED) -> list[str]:
    """``size`` texts, the same for the same seed."""
    rng = random.Random(seed)
    pools = [pool for pool, _ in KINDS]
    weights = [weight for _, weight in KINDS]
    texts: list[str] = []
    for _ in range(size):
        count = rng.choice([1, 2, 3, 5, 8, 13, 21, 40])
        pieces = [rng.choice(rng.choices(pools, weights)[0]) for _ in range(count)]
        text = pieces[0]
        for piece in pieces[1:]:
            text += rng.choice(SEPARATORS) + piece
        texts.append(text)
    return texts


def node_missing_reason() -> str | None:
    """Why the JavaScript reference cannot run here, or None if it can."""
    if shutil.which("node") is None:
        return "node is not installed (the conformance check runs the networks' JavaScript)"
    if not (JS_DIR / "node_modules" / "twitter-text").is_dir():
        return "tests/js/node_modules is missing: run (cd tests/js && npm ci --ignore-scripts)"
    return None


def reference(texts: list[str]) -> list[dict[str, Any]]:
    """twitter-text's parseTweet and @atproto/api's RichText over ``texts``."""
    done = subprocess.run(["node", "reference.mjs"], cwd=JS_DIR, check=True, timeout=120,
                          input=json.dumps(texts), capture_output=True, text=True)
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results
