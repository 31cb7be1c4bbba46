"""The emails in a real headless Chromium: width, alt text, dark-mode contrast.

Screenshots land in test-artifacts/email/ (gitignored) for a human to look at.
"""

from __future__ import annotations

import email
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest

from dispatch.config import load_settings
from dispatch.render import MessageFactory, render_article_edition, render_digest_edition
from email_browser import CHROMIUM, SKIP_REASON, TEXT_COLOURS_JS, Chromium, contrast_ratio
from email_fixtures import (
    ARTICLE,
    ARTIFACTS,
    REPO,
    SEND_DATE,
    WIDE,
    articles_of,
    make_site,
    recipient,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=SKIP_REASON),
]

WIDTHS = (375, 640)


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    chromium = Chromium()
    try:
        yield chromium
    finally:
        chromium.close()


def _sent_html(edition, settings) -> str:  # type: ignore[no-untyped-def]
    """The HTML part exactly as a subscriber receives it."""
    raw = MessageFactory(edition, settings).build(recipient("Zoë & Sam"), date=SEND_DATE)
    message = email.message_from_bytes(raw, policy=policy.default)
    return str(message.get_body(("html",)).get_content())  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def emails(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    example = load_settings(REPO)
    site = make_site(tmp_path_factory.mktemp("browser") / "site",
                     {"salt.md": ARTICLE, "wide.md": WIDE})
    by_slug = {a.slug: a for a in articles_of(site)}
    editions = {
        "digest": (render_digest_edition(example, articles_of(example), "browser-digest"),
                   example),
        "article": (render_article_edition(site, by_slug["salt"], "browser-article"), site),
        "wide": (render_article_edition(site, by_slug["wide"], "browser-wide"), site),
    }
    paths = {}
    for name, (edition, settings) in editions.items():
        path = ARTIFACTS / f"{name}.html"
        path.write_text(_sent_html(edition, settings), encoding="utf-8")
        paths[name] = path
    return paths


@pytest.mark.parametrize("kind", ["digest", "article", "wide"])
@pytest.mark.parametrize("width", WIDTHS)
def test_no_horizontal_overflow_and_every_image_has_alt(browser, emails, kind, width) -> None:  # type: ignore[no-untyped-def]
    browser.open(emails[kind], width=width)
    scroll_width = browser.evaluate("document.documentElement.scrollWidth")
    widest = browser.evaluate(
        "Math.max(...[...document.body.querySelectorAll('*')]"
        ".map(e => e.getBoundingClientRect().right))")
    assert scroll_width <= width and widest <= width + 0.5, (scroll_width, widest)
    images = browser.evaluate(
        "[...document.images].map(i => [i.src, (i.getAttribute('alt') || '').trim()])")
    if kind == "article":
        assert len(images) == 2
    assert all(alt for _src, alt in images), images
    browser.screenshot(ARTIFACTS / f"{kind}-{width}.png", width=width)


@pytest.mark.parametrize("kind", ["digest", "article", "wide"])
@pytest.mark.parametrize("width", WIDTHS)
def test_dark_mode_body_text_has_enough_contrast(browser, emails, kind, width) -> None:  # type: ignore[no-untyped-def]
    browser.open(emails[kind], width=width, dark=True)
    assert browser.evaluate("matchMedia('(prefers-color-scheme: dark)').matches") is True
    samples = browser.evaluate(TEXT_COLOURS_JS)
    assert len(samples) >= 5
    for sample in samples:
        ratio = contrast_ratio(tuple(sample["fg"]), tuple(sample["bg"]))
        assert ratio >= 4.5, sample
    # Really dark: the body text sits on a dark background, not the light one.
    first = samples[0]
    assert sum(first["bg"]) < 3 * 80, first
    browser.screenshot(ARTIFACTS / f"{kind}-{width}-dark.png", width=width)


@pytest.mark.parametrize("kind", ["article", "wide"])
def test_light_mode_body_text_has_enough_contrast(browser, emails, kind) -> None:  # type: ignore[no-untyped-def]
    browser.open(emails[kind], width=640)
    for sample in browser.evaluate(TEXT_COLOURS_JS):
        assert contrast_ratio(tuple(sample["fg"]), tuple(sample["bg"])) >= 4.5, sample


def test_wide_fixture_really_holds_the_wide_things(browser, emails) -> None:  # type: ignore[no-untyped-def]
    """The overflow test only means something if the long things are there,
    and the contrast test samples the code block, headings and sources."""
    browser.open(emails["wide"], width=375, dark=True)
    counts = browser.evaluate(
        "({pre: document.querySelectorAll('.content pre').length,"
        " cols: Math.max(...[...document.querySelectorAll('.content tr')]"
        "   .map(r => r.children.length)),"
        " sources: document.querySelectorAll('.sources li').length})")
    assert counts == {"pre": 1, "cols": 7, "sources": 1}, counts
    texts = " ".join(s["text"] for s in browser.evaluate(TEXT_COLOURS_JS))
    for needle in ("result = compute_something", "A wide table", "Smith J.", "Wide things"):
        assert needle in texts, needle
