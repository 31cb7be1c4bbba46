"""What a valid article turns into: takeaway, sources, derived fields, status."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.sitekit import write_article

from dispatch.config import load_settings
from dispatch.content.loader import load_site
from dispatch.models import Article


def one(root: Path) -> Article:
    result = load_site(load_settings(root))
    assert len(result.articles) == 1, result.problems
    return result.articles[0]


def test_takeaway_section_html_and_text(site_root: Path) -> None:
    body = (
        "Intro.\n\n## Background\n\nText.\n\n## Key Takeaways\n\n"
        "Sleep **seven** hours.\n\n### Detail\n\nStill part of it.\n\n"
        "## Common questions\n\n**Why?** Because.\n"
    )
    write_article(site_root, "a.md", "title: T\ndate: 2026-01-01", body)
    article = one(site_root)
    assert article.takeaway is not None
    assert "<strong>seven</strong>" in article.takeaway.html
    assert "<h3>Detail</h3>" in article.takeaway.html
    assert "Common questions" not in article.takeaway.html
    assert article.takeaway.text == "Sleep seven hours.\n\nDetail\n\nStill part of it."
    # In the body the section is wrapped so a template can highlight it in place.
    assert '<div class="key-takeaway">\n<h2>Key Takeaways</h2>' in article.body_html


def test_level_one_heading_is_not_a_takeaway(site_root: Path) -> None:
    write_article(site_root, "a.md", "title: T\ndate: 2026-01-01", "# Key takeaway\n\nNo.\n")
    assert one(site_root).takeaway is None


def test_frontmatter_takeaway_overrides_the_section(site_root: Path) -> None:
    write_article(site_root, "a.md", "title: T\ndate: 2026-01-01\ntakeaway: Use *this*.",
                  "## Key takeaway\n\nNot this.\n")
    article = one(site_root)
    assert article.takeaway is not None
    assert article.takeaway.text == "Use this." and "<em>this</em>" in article.takeaway.html


def test_footnotes_become_sources_and_an_empty_sources_heading_goes(site_root: Path) -> None:
    body = (
        "Claim one.[^a] Claim two.[^b]\n\n## Key takeaway\n\nBe well.\n\n"
        "*Not medical advice.*\n\n## Sources\n\n[^a]: First study, 2020.\n"
        "[^b]: Second review, <https://example.org/review>.\n"
    )
    write_article(site_root, "a.md", "title: T\ndate: 2026-01-01", body)
    article = one(site_root)
    assert article.sources == ("First study, 2020.", "Second review, https://example.org/review.")
    assert "<h2>Sources</h2>" not in article.body_html
    assert 'class="footnotes"' in article.sources_html
    assert "footnotes" not in article.body_html.replace("footnote-ref", "")
    # Footnote anchors are absolute, so they work from an email or a feed.
    assert 'href="https://journal.test/a/#fn1"' in article.body_html


def test_sources_heading_with_other_content_stays(site_root: Path) -> None:
    body = "Text.[^1]\n\n## Sources\n\nAlso our own audit.\n\n[^1]: A study.\n"
    write_article(site_root, "a.md", "title: T\ndate: 2026-01-01", body)
    assert "<h2>Sources</h2>" in one(site_root).body_html


def test_derived_fields(site_root: Path) -> None:
    words = " ".join(["word"] * 700)
    write_article(site_root, "My Post.md", "title: T\ndate: 2026-01-01\nimage: img/a.jpg\n"
                  "image_alt: A", f"First para [link](/about) ![x](pic.png).\n\n{words}\n")
    article = one(site_root)
    assert article.slug == "my-post"
    assert article.url == "https://journal.test/my-post/"
    assert article.reading_minutes == 4  # 704 words at 230 a minute
    assert article.summary == "First para link x."
    assert article.excerpt.endswith("…") and len(article.excerpt) <= 281
    assert article.image == "https://journal.test/img/a.jpg"
    assert 'href="https://journal.test/about"' in article.body_html
    assert 'src="https://journal.test/pic.png"' in article.body_html


def test_naive_date_is_read_in_the_site_timezone(site_root: Path) -> None:
    # Europe/London is on BST (UTC+1) in July.
    write_article(site_root, "a.md", "title: T\ndate: 2026-07-01T09:00", "Body.\n")
    assert one(site_root).date.astimezone(UTC) == datetime(2026, 7, 1, 8, 0, tzinfo=UTC)


def test_explicit_offset_is_kept(site_root: Path) -> None:
    write_article(site_root, "a.md", "title: T\ndate: 2026-07-01T09:00:00-05:00", "Body.\n")
    assert one(site_root).date.astimezone(UTC) == datetime(2026, 7, 1, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(("status", "date", "expected"), [
    ("published", "2026-01-01", True),
    ("draft", "2026-01-01", False),
    ("published", "2026-03-01", False),  # scheduled: date still in the future
])
def test_published_means_status_and_date(site_root: Path, status: str, date: str,
                                         expected: bool) -> None:
    write_article(site_root, "a.md", f"title: T\ndate: {date}\nstatus: {status}", "Body.\n")
    now = datetime(2026, 2, 1, tzinfo=UTC)
    assert one(site_root).is_published(now) is expected


def test_scheduled_article_publishes_when_its_date_passes(site_root: Path) -> None:
    write_article(site_root, "a.md", "title: T\ndate: 2026-03-01T08:00:00+00:00", "Body.\n")
    article = one(site_root)
    assert not article.is_published(datetime(2026, 3, 1, 7, 59, tzinfo=UTC))
    assert article.is_published(datetime(2026, 3, 1, 8, 0, tzinfo=UTC))


def test_dangerous_html_never_survives(site_root: Path) -> None:
    body = ('Hi <script>alert(1)</script><iframe src="x"></iframe>'
            '<a href="javascript:alert(1)" onclick="x()">x</a>\n\n'
            '<form action="/x"><input></form><object></object><embed src="e">\n')
    write_article(site_root, "a.md", "title: T\ndate: 2026-01-01", body)
    result = load_site(load_settings(site_root))
    html = result.articles[0].body_html.lower()
    for needle in ("<script", "<iframe", "<form", "<object", "<embed", "onclick", "javascript:"):
        assert needle not in html
    assert any("raw HTML" in p.message for p in result.problems)
