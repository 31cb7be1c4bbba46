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


@pytest.mark.parametrize("kind", ["digest", "article"])
def test_preheader_takes_no_space_and_has_no_colour_trick(browser, emails, kind) -> None:  # type: ignore[no-untyped-def]
    browser.open(emails[kind], width=640)
    found = browser.evaluate(
        "[...document.querySelectorAll('.preheader')].map(e => {"
        " const s = getComputedStyle(e), r = e.getBoundingClientRect();"
        " return [s.display, r.width * r.height, s.color,"
        "         getComputedStyle(document.body).backgroundColor]; })")
    assert len(found) == 2
    for display, area, colour, background in found:
        assert display == "none" and area == 0
        assert colour != background  # hidden by display, not by painting it invisible


def test_footnote_marker_does_not_stretch_its_line(browser, emails) -> None:  # type: ignore[no-untyped-def]
    """Two lines of body text, with and without the email's own footnote
    marker: the same height. A browser's default <sup> does push its line
    apart, so the comparison can tell."""
    browser.open(emails["article"], width=640)
    heights = browser.evaluate(r"""
    (() => {
      const sup = document.querySelector('sup.footnote-ref');
      const p = sup.closest('p');
      const make = (marker) => {
        const q = document.createElement('p');
        q.setAttribute('style', p.getAttribute('style'));
        q.style.width = '400px';
        q.append('Line one');
        if (marker) q.append(marker);
        q.append(document.createElement('br'), 'Line two');
        p.parentElement.append(q);
        return q.getBoundingClientRect().height;
      };
      const bare = sup.cloneNode(true);
      bare.removeAttribute('style');  // a browser's default <sup>
      return {plain: make(null), email: make(sup.cloneNode(true)), unfixed: make(bare)};
    })()""")
    assert abs(heights["email"] - heights["plain"]) < 0.5, heights
    assert heights["unfixed"] > heights["plain"] + 0.5, heights


def test_dark_mode_table_rules_are_dark(browser, emails) -> None:  # type: ignore[no-untyped-def]
    script = ("[...document.querySelectorAll("
              "'.content td:not(.key-takeaway-cell), .content th')].map("
              "e => (getComputedStyle(e).borderBottomColor.match(/[\\d.]+/g) || [])"
              ".slice(0, 3).map(Number))")
    browser.open(emails["wide"], width=640, dark=True)
    dark = browser.evaluate(script)
    browser.open(emails["wide"], width=640)
    light = browser.evaluate(script)
    assert len(dark) >= 14 and len(light) == len(dark)
    assert all(sum(c) > 3 * 180 for c in light), light  # the light theme's rules, really light
    for colour in dark:
        assert sum(colour) < 3 * 110, colour  # no bright lines on the dark background


def test_boxes_keep_their_padding_and_border_on_the_cell(browser, emails) -> None:  # type: ignore[no-untyped-def]
    browser.open(emails["article"], width=375)
    cells = browser.evaluate(
        "[...document.querySelectorAll('.key-takeaway-cell, .sources-cell')].map(e => {"
        " const s = getComputedStyle(e);"
        " return [e.tagName, parseFloat(s.paddingTop) + parseFloat(s.paddingLeft),"
        "         parseFloat(s.borderLeftWidth) + parseFloat(s.borderTopWidth)]; })")
    assert len(cells) == 2, cells
    for tag, padding, border in cells:
        assert tag == "TD" and padding > 0 and border > 0
