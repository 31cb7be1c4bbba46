"""What running text counts as a link (kept whole when text parts are wrapped)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from dispatch.render.text import wrap
from dispatch.values.urls import IN_TEXT

# The textbook way to write it, which retries the scheme from every letter.
_TEXTBOOK = re.compile(r"(?:[a-z][a-z0-9+.-]*://|mailto:|www\.)\S", re.IGNORECASE)


@given(st.text(alphabet="aZ19+.-:/ w@xé\t", max_size=30))
def test_in_text_finds_exactly_what_the_textbook_pattern_finds(text: str) -> None:
    assert bool(IN_TEXT.search(text)) == bool(_TEXTBOOK.search(text))


def test_links_are_found_and_plain_words_are_not() -> None:
    for link in ("https://example.org/x", "see 1git+ssh://host/repo", "mailto:a@b.example",
                 "www.example.org", "(HTTP://EXAMPLE.ORG)"):
        assert IN_TEXT.search(link), link
    for plain in ("https:// example.org", "://x", "example.org", "a:b", "1234://x"):
        assert not IN_TEXT.search(plain), plain


def test_one_very_long_word_is_cut_into_lines() -> None:
    # A 200,000-letter word: the textbook pattern tried every letter as the
    # start of a scheme and scanned to the end (quadratic: minutes per email
    # part, so `dispatch check` and every pass stalled on such an article).
    text = wrap("x" * 200_000)
    lines = text.split("\n")
    assert len(lines) == 200_000 // 78 + 1 and all(len(line) <= 78 for line in lines)
