"""The message itself: what spam filters, Outlook and mail clients see.

Preheader hidden without same-colour text, boxes as tables, the disclaimer
once, footnotes as plain references, the "-- " signature marker, the
digest's preheader and greeting, and Message-IDs that keep the edition id.
(The same emails in a real browser: tests/test_email_browser.py.)
"""

from __future__ import annotations

import email
import re
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from dispatch.config import Settings, load_settings
from dispatch.render import MessageFactory, render_article_edition, render_digest_edition
from dispatch.render.edition import first_name, repeats
from dispatch.render.mime import message_id
from email_fixtures import ARTICLE, REPO, SEND_DATE, articles_of, make_site, recipient, write

LIGHT_RULES = ("#cbd2d9", "#e4e7eb")


def parts(raw: bytes) -> tuple[str, str, EmailMessage]:
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    html = message.get_body(("html",))
    text = message.get_body(("plain",))
    assert html is not None and text is not None
    return str(html.get_content()), str(text.get_content()), message


@pytest.fixture(scope="module")
def example() -> Settings:
    return load_settings(REPO)


def example_article(settings: Settings, slug: str = "sleep-and-blood-pressure"
                    ) -> tuple[str, str, EmailMessage]:
    article = next(a for a in articles_of(settings) if a.slug == slug)
    edition = render_article_edition(settings, article, f"{slug}.weekly")
    return parts(MessageFactory(edition, settings).build(recipient(), date=SEND_DATE))


def example_digest(settings: Settings, name: str | None = "Ann Reader"
                   ) -> tuple[str, str, EmailMessage]:
    edition = render_digest_edition(settings, articles_of(settings), "weekly-digest")
    return parts(MessageFactory(edition, settings).build(recipient(name), date=SEND_DATE))


@pytest.mark.parametrize("kind", ["article", "digest"])
def test_preheader_is_hidden_without_same_colour_text(example: Settings, kind: str) -> None:
    html, _text, _m = example_article(example) if kind == "article" else example_digest(example)
    styles = re.findall(r'<div class="preheader" style="([^"]*)"', html)
    assert len(styles) == 2
    for style in styles:
        assert "display:none" in style and "mso-hide:all" in style
        assert not re.search(r"(^|;)\s*color\s*:", style), style
    # Nothing else is painted in the background colour either.
    background = "#eef1f4"
    for style in re.findall(r'style="([^"]*)"', html):
        colour = re.search(r"(?:^|;)\s*color\s*:\s*(#[0-9a-f]{6})", style)
        assert not (colour and colour.group(1) == background), style


@pytest.mark.parametrize("kind", ["article", "digest", "frontmatter takeaway"])
def test_boxes_are_tables_with_their_style_on_the_cell(example: Settings, tmp_path: Path,
                                                       kind: str) -> None:
    if kind == "article":
        html, _t, _m = example_article(example)
        boxes = {"key-takeaway": 1, "sources": 1}
    elif kind == "digest":
        html, _t, _m = example_digest(example)
        boxes = {"takeaway": len(articles_of(example))}
    else:
        site = make_site(tmp_path / "s", {"t.md": ARTICLE.replace(
            "## Key takeaway\n\nCutting salt lowers blood pressure within weeks.\n", "").replace(
            "category: Heart health", "category: Heart health\ntakeaway: Less salt helps.")})
        edition = render_article_edition(site, articles_of(site)[0], "t")
        html, _t, _m = parts(MessageFactory(edition, site).build(recipient(), date=SEND_DATE))
        boxes = {"takeaway": 1, "sources": 1}
    for name, count in boxes.items():
        tables = re.findall(rf'<table role="presentation" class="{name}"[^>]*>\s*<tr>\s*'
                            rf'<td class="{name}-cell" style="([^"]*)"', html)
        assert len(tables) == count, (name, html.count(f'class="{name}"'))
        for style in tables:
            assert "padding:" in style and "border" in style
        assert not re.search(rf'<div class="{name}"', html)
    # Outlook drops padding and borders on any div: none relies on them.
    for style in re.findall(r'<div\b[^>]*style="([^"]*)"', html):
        assert "padding" not in style and "border" not in style, style


def test_disclaimer_is_shown_once_in_the_article_email(example: Settings) -> None:
    # The example articles end with their own disclaimer paragraph, and
    # [email] disclaimer says nearly the same: one of them is enough.
    assert "medical advice" in example.email.disclaimer  # type: ignore[operator]
    html, text, _m = example_article(example)
    assert html.count("not medical advice") == 1
    assert text.count("not medical advice") == 1


def test_disclaimer_from_the_setting_when_the_body_has_none(tmp_path: Path) -> None:
    site = make_site(tmp_path / "s")  # [email] disclaimer = "General information, not …"
    article = next(a for a in articles_of(site) if a.slug == "salt")
    html, text, _m = parts(MessageFactory(render_article_edition(site, article, "a"),
                                          site).build(recipient(), date=SEND_DATE))
    assert html.count("General information, not medical advice.") == 1
    assert text.count("General information, not medical advice.") == 1


@pytest.mark.parametrize(("body", "same"), [
    ("*This article is general information, not medical advice; speak to your clinician "
     "about your own health.*", True),
    ("Intro.\n\nThis email is general information, not medical advice. Speak to your "
     "clinician about your own health.\n\nMore.", True),
    ("Medical advice from your clinician comes first.", False),
    ("General information about sleep and your own health, from a clinician.", False),
    ("", False),
])
def test_which_body_paragraph_repeats_the_disclaimer(body: str, same: bool) -> None:
    disclaimer = ("This email is general information, not medical advice. Speak to your "
                  "clinician about your own health.")
    assert repeats(disclaimer, body) is same
    assert repeats("", body) is False


def test_footnotes_are_plain_references_to_the_sources(example: Settings) -> None:
    html, text, _m = example_article(example)
    assert not re.search(r'href="[^"]*#fn', html), "a footnote link leaves the message"
    assert "footnote-backref" not in html and "\u21a9" not in html
    markers = re.findall(r'<sup class="footnote-ref"[^>]*>(\[\d+\])</sup>', html)
    sources = re.findall(r'<li id="fn\d+" class="footnote-item"', html)
    assert markers and len(sources) >= max(int(m.strip("[]")) for m in markers)
    sup_style = re.search(r'<sup class="footnote-ref" style="([^"]*)"', html)
    assert sup_style and "line-height:0" in sup_style.group(1)
    assert "[1]" in text and "SOURCES" in text


@pytest.mark.parametrize("kind", ["article", "digest"])
def test_text_footer_starts_with_the_signature_marker(example: Settings, kind: str) -> None:
    _h, text, _m = example_article(example) if kind == "article" else example_digest(example)
    lines = text.replace("\r\n", "\n").split("\n")
    assert lines.count("-- ") == 1 and "--" not in lines
    footer = lines[lines.index("-- ") + 1:]
    assert any("unsubscribe" in line.lower() for line in footer)


def test_digest_preheader_is_the_lead_articles_takeaway_or_title(example: Settings,
                                                                 tmp_path: Path) -> None:
    articles = articles_of(example)
    edition = render_digest_edition(example, articles, "d")
    lead = articles[0]
    assert lead.takeaway is not None
    assert edition.preheader == lead.takeaway.text != example.email.digest_intro
    html, _t, _m = parts(MessageFactory(edition, example).build(recipient(), date=SEND_DATE))
    shown = re.search(r'<div class="preheader"[^>]*>([^<]*)</div>', html)
    assert shown and shown.group(1).strip() == lead.takeaway.text
    # A lead article without a takeaway: its title.
    site = make_site(tmp_path / "s", {"plain.md": "---\ntitle: Plain news\n"
                                      "date: 2026-10-05T08:00:00\nsummary: S.\n---\n\nText.\n"})
    assert render_digest_edition(site, articles_of(site), "p").preheader == "Plain news"


@pytest.mark.parametrize(("name", "first"), [
    ("Ann Reader", "Ann"), ("Reader, Ann", "Ann"), ("Dr Ann Reader", "Ann"),
    ("dr. Ann", "Ann"), ("Dr", "Dr"), ("  Zoë   Ng ", "Zoë"), ("Reader,", "Reader"),
    ("李 小龙", "李"), (None, ""), ("", ""),
])
def test_first_name(name: str | None, first: str) -> None:
    assert first_name(name) == first


def test_greeting_uses_the_first_name_or_the_fallback(example: Settings, tmp_path: Path) -> None:
    html, text, _m = example_digest(example, "Zoë & Sam Smith")
    assert "Hi Zoë," in html and "Hi Zoë," in text and "Sam Smith" not in text
    html, text, _m = example_digest(example, None)
    assert "Hi there," in html and "Hi there," in text
    site = make_site(tmp_path / "s")
    with open(site.root / "dispatch.toml", "a", encoding="utf-8") as fh:
        fh.write('first_name_fallback = "friend"\n')  # appended to the [email] table
    site = load_settings(site.root)
    edition = render_digest_edition(site, articles_of(site), "d")
    _h, text, _m = parts(MessageFactory(edition, site).build(recipient(None), date=SEND_DATE))
    assert "Hi friend," in text


def test_first_name_in_an_attribute_is_refused(tmp_path: Path) -> None:
    from dispatch.errors import TemplateError
    from dispatch.render.env import PACKAGE_DIR

    site = make_site(tmp_path / "s")
    source = (PACKAGE_DIR / "digest.html").read_text(encoding="utf-8")
    write(site.root, "templates/email/digest.html", source.replace(
        '<p class="greeting">', '<p class="greeting" title="{{ recipient.first_name }}">'))
    with pytest.raises(TemplateError, match="attribute"):
        render_digest_edition(load_settings(site.root), articles_of(site), "d")


@pytest.mark.parametrize("length", [40, 41, 80, 100])
def test_message_id_keeps_the_edition_id_whole(length: int) -> None:
    edition_id = ("weekly-digest-2026-11-02T07-30-" + "x" * 200)[:length]
    found = message_id(edition_id, "ann@example.org", "journal.test")
    assert f".{edition_id}@journal.test>" in found


def test_message_id_hashes_a_very_long_edition_id() -> None:
    base = "schedule-" + "y" * 120
    one = message_id(base + "-one", "ann@example.org", "journal.test")
    two = message_id(base + "-two", "ann@example.org", "journal.test")
    slug = re.fullmatch(r"<[0-9a-f]{24}\.([^@]+)@journal\.test>", one)
    assert slug and len(slug.group(1)) <= 100 and "yyyy" not in one
    assert one.split(".")[1] != two.split(".")[1]
    assert len(f"Message-ID: {one}") < 998


def test_factory_and_naive_message_ids_agree_for_a_long_digest_id(example: Settings) -> None:
    edition_id = "digest-weekly-" + "2026-11-02T07:30:00+00:00-" * 3
    edition = render_digest_edition(example, articles_of(example)[:1], edition_id)
    factory = MessageFactory(edition, example)
    person = recipient()
    assert factory.message_id(person) == message_id(edition_id, person.email,
                                                    "northfield-clinic.example")
    assert re.sub(r"[^A-Za-z0-9.-]+", "-", edition_id).strip("-.") in factory.message_id(person)
