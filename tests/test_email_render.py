"""Rendering editions: email-safe markup, inlining, links, text part, templates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dispatch.checks import all_problems
from dispatch.errors import InputError, TemplateError
from dispatch.render import Edition, render_article_edition, render_digest_edition
from dispatch.render.edition import PLACEHOLDERS
from dispatch.render.env import PACKAGE_DIR
from email_fixtures import ARTICLE, NOW, articles_of, make_site, write


@pytest.fixture
def site(tmp_path: Path):  # type: ignore[no-untyped-def]
    return make_site(tmp_path / "site")


def _body(html: str) -> str:
    return html[html.index("<body"):]


def test_article_email_is_email_safe_markup(site) -> None:  # type: ignore[no-untyped-def]
    article = next(a for a in articles_of(site) if a.slug == "salt")
    edition = render_article_edition(site, article, "ed-1")
    html = edition.html
    assert edition.kind == "article" and edition.subject == article.title
    assert '<meta name="color-scheme" content="light dark">' in html
    assert "<!--[if mso]>" in html and "v:roundrect" in html
    layout = re.findall(r"<table\b[^>]*>", html)
    assert layout and all('role="presentation"' in t for t in layout if "content" not in t)
    assert re.search(r'<table[^>]*class="container"[^>]*width="600"', html)
    # The preheader is the dek, hidden, first thing in <body>.
    assert re.search(r'<body[^>]*>\s*<div class="preheader" style="[^"]*display:none[^"]*">'
                     r"Most of the salt we eat is already in food\.</div>", html)
    # Every element in the body carries inline styles from inline.css.
    for tag in ("p", "h1", "h2", "li", "a"):
        for element in re.findall(rf"<{tag}\b[^>]*>", _body(html)):
            assert "style=" in element, element
    # Images: absolute https, width, alt.
    images = re.findall(r"<img\b[^>]*>", html)
    assert len(images) == 2
    for img in images:
        assert re.search(r'src="https://journal\.test/', img)
        assert re.search(r'width="\d+"', img) and re.search(r'alt="[^"]+"', img)
    assert "Cutting salt lowers blood pressure" in html and 'class="key-takeaway"' in html
    assert "Survey of salt intake" in html and "General information, not medical advice." in html
    assert "1 Test Street, Testville" in html
    assert PLACEHOLDERS["unsubscribe_url"] in html and PLACEHOLDERS["webview_url"] in html


def test_head_css_keeps_important_and_media_queries(site) -> None:  # type: ignore[no-untyped-def]
    edition = render_digest_edition(site, articles_of(site), "d-1")
    head = edition.html[:edition.html.index("<body")]
    styles = re.findall(r"<style[^>]*>(.*?)</style>", head, re.DOTALL)
    assert len(styles) == 1
    css = styles[0]
    assert "@media (prefers-color-scheme: dark)" in css and "max-width: 620px" in css
    assert "[data-ogsc]" in css and "url(" not in css
    declarations = [d for d in re.findall(r"\{([^{}]*)\}", css) if d.strip()]
    for block in declarations:
        for decl in filter(str.strip, block.split(";")):
            # :root's color-scheme declarations are hints, not overrides.
            assert decl.strip().endswith("!important") or "color-scheme" in decl, decl
    # inline.css is consumed by inlining and not shipped as a <style>.
    assert "margin: 0 0 16px 0" not in css  # a rule only inline.css has
    assert "<style" not in _body(edition.html)


def test_digest_has_one_card_per_article(site) -> None:  # type: ignore[no-untyped-def]
    articles = articles_of(site)
    edition = render_digest_edition(site, articles, "d-2", intro="Two new pieces.",
                                    subject="{{ articles|length }} new articles")
    assert edition.subject == "2 new articles"
    assert edition.html.count('class="card"') == 2
    assert "Two new pieces." in edition.html and "Read more" in edition.html
    assert "Walk for ten minutes after eating." in edition.html
    assert "METABOLIC HEALTH" in edition.text and "Key takeaway: Walk for ten" in edition.text
    assert edition.article_slugs == tuple(a.slug for a in articles)
    assert Edition.from_json(edition.to_json()) == edition


def test_site_links_get_utm_and_others_do_not(site) -> None:  # type: ignore[no-untyped-def]
    article = next(a for a in articles_of(site) if a.slug == "salt")
    edition = render_article_edition(site, article, "weekly-42")
    hrefs = re.findall(r'href="([^"]*)"', edition.html)
    site_links = [h for h in hrefs if h.startswith("https://journal.test/")]
    assert site_links
    for href in site_links:
        assert "utm_source=newsletter" in href and "utm_campaign=weekly-42" in href, href
    assert "https://www.nhs.uk/salt" in hrefs  # untouched: not ours to tag
    # Recipient URLs stay exactly as the outbox gives them.
    assert PLACEHOLDERS["unsubscribe_url"] in hrefs
    assert "https://journal.test/guides/salt?utm_source=newsletter" in edition.text


def test_utm_is_configurable(tmp_path: Path) -> None:
    settings = make_site(tmp_path / "s")
    toml = (tmp_path / "s" / "dispatch.toml")
    toml.write_text(toml.read_text() + '\n[email.utm]\nutm_source = "weekly"\n'
                    'utm_medium = ""\nutm_campaign = "autumn"\n', encoding="utf-8")
    from dispatch.config import load_settings

    settings = load_settings(tmp_path / "s")
    article = next(a for a in articles_of(settings) if a.slug == "salt")
    html = render_article_edition(settings, article, "x").html
    assert "utm_source=weekly&amp;utm_campaign=autumn" in html
    assert "utm_medium" not in html


DANGEROUS = """\
---
title: Dangerous
date: 2026-10-02T08:00:00
summary: Raw HTML everywhere.
---

Hello <script>alert('s')</script> world.

<iframe src="https://evil.test/frame"></iframe>

<form action="https://evil.test/post"><input name="card"></form>

<object data="https://evil.test/x.swf"></object><embed src="https://evil.test/y.swf">

<p onclick="steal()" onmouseover="steal()">Click me</p>

<img src="/pic.png" onerror="steal()" alt="A picture">

<a href="javascript:steal()">raw js</a> <a href=" JaVaScRiPt:steal()">spaced</a>
[md js](javascript:steal()) <a href="vbscript:x">vb</a> <a href="data:text/html,x">data</a>

<svg onload="steal()"></svg><style>p{}</style>

See [the about page](about/) and ![](relative/chart.png)
"""


def test_dangerous_html_never_reaches_the_email(tmp_path: Path) -> None:
    settings = make_site(tmp_path / "s", {"bad.md": DANGEROUS})
    article = articles_of(settings)[0]
    edition = render_article_edition(settings, article, "bad")
    for text in (edition.html, edition.text):
        lowered = text.lower()
        for needle in ("<script", "<iframe", "<form", "<object", "<embed", "<svg", "onclick",
                       "onmouseover", "onerror", "onload", "evil.test", "<input", "<style"):
            assert needle not in _body(lowered) if "<body" in lowered else needle not in lowered
    # Every URL that survives is http(s) or mailto: no javascript:, vbscript:, data:.
    urls = re.findall(r'\s(?:href|src)="([^"]*)"', edition.html)
    assert urls and all(u.startswith(("https://", "http://", "mailto:", "DISPATCH"))
                        for u in urls), urls
    assert "steal()</" not in edition.html and "alert" not in edition.html
    # Relative URLs became absolute on the site, and the empty alt got a safe text.
    assert 'href="https://journal.test/about/?utm_source' in edition.html
    assert re.search(r'<img src="https://journal.test/relative/chart.png" alt="Illustration"',
                     edition.html)
    # ... and the writer hears about all of it from `dispatch check`.
    messages = [str(p) for p in all_problems(settings, NOW)]
    assert any("raw HTML with scripts" in m and "content/bad.md:" in m for m in messages)
    assert any("has no alt text" in m for m in messages)


def test_text_part_structure_and_wrapping(site) -> None:  # type: ignore[no-untyped-def]
    article = next(a for a in articles_of(site) if a.slug == "salt")
    text = render_article_edition(site, article, "t").text
    assert "What helps\n----------" in text
    assert "- Read labels.\n- Cook from scratch" in text
    assert "  because habits" in text  # hanging indent of a wrapped list item
    assert "1. First numbered\n2. Second numbered" in text
    assert "the NHS page (https://www.nhs.uk/salt)" in text
    assert "meals.[1]" in text and "[1] Survey of salt intake, 2024." in text
    # Recipient URLs have unknown length: always on a line of their own.
    assert f"Unsubscribe:\n{PLACEHOLDERS['unsubscribe_url']}\n" in text
    assert "<" not in text.replace("<", "", 0) or "<p" not in text
    for line in text.splitlines():
        if len(line) > 78:
            # Only a URL (alone or after its label) may run long: it must stay clickable.
            assert re.search(r"https?://\S{40,}", line), line


def test_site_template_overrides_packaged_one(tmp_path: Path) -> None:
    settings = make_site(tmp_path / "s")
    source = (PACKAGE_DIR / "digest.html").read_text(encoding="utf-8")
    write(tmp_path / "s", "templates/email/digest.html",
          source.replace('<p class="intro">', '<p class="intro">OVERRIDDEN '))
    edition = render_digest_edition(settings, articles_of(settings), "o")
    assert "OVERRIDDEN" in edition.html
    # The article email still comes from the packaged default.
    article = articles_of(settings)[0]
    assert "OVERRIDDEN" not in render_article_edition(settings, article, "o2").html


def test_template_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    settings = make_site(tmp_path / "s")
    write(tmp_path / "s", "templates/email/digest.html",
          '{% extends "base.html" %}\n{% block content %}\n<p>{{ intro }</p>\n{% endblock %}\n')
    with pytest.raises(TemplateError) as caught:
        render_digest_edition(settings, articles_of(settings), "x")
    problem = caught.value.problems[0]
    assert problem.path == "templates/email/digest.html" and problem.line == 3
    messages = [str(p) for p in all_problems(settings, NOW)]
    assert any(m.startswith("templates/email/digest.html:3: template: template syntax error")
               for m in messages), messages


def test_undefined_variable_names_file_and_line(tmp_path: Path) -> None:
    settings = make_site(tmp_path / "s")
    write(tmp_path / "s", "templates/email/article.html",
          '{% extends "base.html" %}\n{% block content %}\n\n<p>{{ article.subtitle }}</p>\n'
          "{% endblock %}\n")
    article = articles_of(settings)[0]
    with pytest.raises(TemplateError) as caught:
        render_article_edition(settings, article, "x")
    problem = caught.value.problems[0]
    assert (problem.path, problem.line) == ("templates/email/article.html", 4)
    assert "subtitle" in problem.message
    assert any(p.path == "templates/email/article.html" and p.line == 4 and p.is_error
               for p in all_problems(settings, NOW))


def test_template_image_without_alt_is_warned(tmp_path: Path) -> None:
    settings = make_site(tmp_path / "s")
    source = (PACKAGE_DIR / "digest.html").read_text(encoding="utf-8")
    write(tmp_path / "s", "templates/email/digest.html",
          source.replace('<p class="intro">', '<img src="https://journal.test/logo.png" '
                         'width="100" height="20"><p class="intro">'))
    problems = [p for p in all_problems(settings, NOW) if p.field == "alt"]
    assert problems and not problems[0].is_error and problems[0].path == "digest.html"


def test_oversized_article_is_refused_and_fails_check(tmp_path: Path) -> None:
    paragraph = "Blood pressure and sleep are linked in many studies. " * 20 + "\n\n"
    big = ARTICLE.replace("## What helps", paragraph * 480 + "## What helps")
    assert len(big.encode()) > 500_000
    settings = make_site(tmp_path / "s", {"big.md": big})
    article = articles_of(settings)[0]
    with pytest.raises(TemplateError, match="Gmail clips past 102 KB"):
        render_article_edition(settings, article, "big")
    errors = [p for p in all_problems(settings, NOW) if p.is_error]
    assert any(p.path == "content/big.md" and "102 KB" in p.message for p in errors)


def test_size_warning_between_90_and_102_kb(tmp_path: Path) -> None:
    from dispatch.render.settings import size_problems

    assert size_problems("x", 80 * 1024, False) == []
    (warn,) = size_problems("x", 95 * 1024, False)
    assert not warn.is_error
    (fail,) = size_problems("x", 103 * 1024, False)
    assert fail.is_error
    (allowed,) = size_problems("x", 103 * 1024, True)
    assert not allowed.is_error


def test_subject_templates_are_sandboxed_and_strict(site) -> None:  # type: ignore[no-untyped-def]
    articles = articles_of(site)
    with pytest.raises(TemplateError):
        render_digest_edition(site, articles, "s", subject="{{ nope }} news")
    with pytest.raises(TemplateError):
        render_digest_edition(site, articles, "s",
                              subject="{{ articles.__class__.__mro__[1].__subclasses__() }}")
    edition = render_digest_edition(site, articles, "s", subject="R&D <weekly>: {{ site.title }}")
    assert edition.subject == "R&D <weekly>: Test Journal"  # headers are never HTML-escaped


def test_bad_email_config_is_a_config_error(tmp_path: Path) -> None:
    make_site(tmp_path / "s")
    toml = tmp_path / "s" / "dispatch.toml"
    toml.write_text(toml.read_text() + "allow_clip = 3\n", encoding="utf-8")
    from dispatch.config import load_settings

    with pytest.raises(InputError) as caught:
        load_settings(tmp_path / "s")
    assert caught.value.problems[0].field == "email.allow_clip"
    assert caught.value.problems[0].line == 13


def test_no_network_during_rendering(site, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import socket

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("rendering tried to use the network")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    edition = render_digest_edition(site, articles_of(site), "n")
    assert edition.html


def test_packaged_example_site_checks_clean() -> None:
    from dispatch.config import load_settings
    from dispatch.content.loader import load_site
    from dispatch.render.checks import template_problems
    from email_fixtures import REPO

    settings = load_settings(REPO)
    problems = template_problems(settings, load_site(settings).articles, now=NOW)
    assert not [p for p in problems if p.is_error], problems


@pytest.mark.parametrize("source", [
    '{{ "x" * 100000000 }}',
    '{{ 100000000 * "x" }}',
    '{% for i in range(100000) %}{{ "x" * 900 }}{% endfor %}',
    "{{ 9 ** 99999999 }}",
    '{{ "y" * 999 }}',
    '{{ "x" | center(100000000) }}',
    '{{ "x" | indent(100000000, true) }}',
    '{{ "x".ljust(100000000) }}',
    # Format widths and precisions, written or taken from an argument.
    '{{ "{:>100000000}".format(1) }}',
    '{{ "{:.100000000f}".format(1.0) }}',
    '{{ "{0:{1}}".format(1, 100000000) }}',
    '{{ "{a:>{w}}".format_map({"a": 1, "w": 100000000}) }}',
    '{{ "%100000000d" % 1 }}',
    '{{ "%(a)100000000s" % {"a": 1} }}',
    '{{ "%*d" % (100000000, 1) }}',
    '{{ "%.100000000f" % 1.0 }}',
    '{{ "%100000000s" | format(1) }}',
    # Replacing and joining that multiply the text.
    '{{ ("x" * 900) | replace("x", "y" * 900) }}',
    '{{ ("x" * 900).replace("x", "y" * 900) }}',
    '{{ (range(100000) | list) | join("y" * 900) }}',
    '{{ "y".join(range(100000) | map("string") | list) * 2 }}',
    # Nested lists count in full: 900 references to one 900-item list.
    '{{ [["x"] * 900] * 900 }}',
    # Doubling in a loop, with ~ and +, and a filter applied again and again.
    '{% set ns = namespace(a="x" * 900) %}{% for i in range(40) %}'
    '{% set ns.a = ns.a ~ ns.a %}{% endfor %}{{ ns.a | length }}',
    '{% set ns = namespace(a="x" * 900) %}{% for i in range(40) %}'
    '{% set ns.a = ns.a + ns.a %}{% endfor %}{{ ns.a | length }}',
    '{{ ("\\"" * 900)' + ' | tojson' * 25 + ' | length }}',
    # A list grown silently in a loop (subjects cannot change lists).
    '{% set a = [] %}{% for i in range(100000) %}{% if a.append("x" * 900) %}{% endif %}'
    '{% endfor %}{{ a | length }}',
    '{{ lipsum(n=100000000) }}',
])
def test_a_subject_longer_than_a_header_line_is_refused_without_building_it(
        source: str) -> None:
    import tracemalloc

    from dispatch.render.env import render_subject

    tracemalloc.start()
    try:
        with pytest.raises(TemplateError) as caught:
            render_subject(source, {})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.problems[0].field == "subject"
    # Refused after a bounded amount of work: well under what building the
    # asked-for text would take (100 MB and up for every case above).
    assert peak < 20_000_000, f"{peak:,} bytes allocated before the refusal"
    assert render_subject('{{ "y" * 998 }}', {}) == "y" * 998
    # Ordinary numbers and widths still work.
    assert render_subject('{{ "7".zfill(3) }} {{ "%s" | format(2026) }} {{ "{}".format(2027) }}',
                          {}) == "007 2026 2027"
    assert render_subject('{{ "{:0>5}".format(7) }}|{{ "%05d" % 42 }}|{{ "a" ~ "b" }}|'
                          '{{ ["a", "b"] | join(", ") }}|{{ "x-y" | replace("-", " ") }}|'
                          '{{ [1] + [2] }}|{{ "%(n)s" % {"n": 3} }}|'
                          '{{ "{n}".format_map({"n": 4}) }}',
                          {}) == "00007|00042|ab|a, b|x y|[1, 2]|3|4"
    # A join of an iterator (map's) joins its items, not an emptied iterator.
    assert render_subject('{{ range(3) | map("string") | join(",") }}|'
                          '{{ [{"t": "a"}, {"t": "b"}] | join("+", attribute="t") }}',
                          {}) == "0,1,2|a+b"


@pytest.mark.timeout(120)  # the code before this test spent hours in the loops below
@pytest.mark.parametrize("source", [
    '{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}x',
    '{% macro inner() %}{% for b in range(100000) %}{% endfor %}{% endmacro %}'
    '{% for a in range(100000) %}{{ inner() }}{% endfor %}',
    '{% for a in range(100000) %}{% for b in "x" * 900 %}{% endfor %}{% endfor %}',
    '{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}',
    "{{ 1 / 0 }}",
])
def test_a_subject_whose_loops_or_calls_never_end_is_refused(source: str) -> None:
    from dispatch.render.env import render_subject

    with pytest.raises(TemplateError) as caught:
        render_subject(source, {})
    problem = caught.value.problems[0]
    assert problem.field == "subject" and problem.message.startswith(repr(source))


def test_ordinary_loops_in_a_subject_still_work() -> None:
    from dispatch.render.env import render_subject

    context = {"articles": [{"title": "Sleep"}, {"title": "Walking"}]}
    assert render_subject(
        '{% for a in articles %}{{ loop.index }}/{{ loop.length }} {{ a.title }}'
        '{% if not loop.last %}, {% endif %}{% endfor %}', context) == "1/2 Sleep, 2/2 Walking"
    assert render_subject('{% for a in [] %}x{% else %}none{% endfor %}', context) == "none"
    assert render_subject('{% for a in articles if a.title == "Walking" %}{{ a.title }}'
                          '{% endfor %}', context) == "Walking"
    assert render_subject('{% for x in [1, [2, 3]] recursive %}{% if x is iterable %}'
                          '{{ loop(x) }}{% else %}{{ x }}{% endif %}{% endfor %}', context) == "123"
    assert render_subject('{% for k, v in {"a": 1}.items() %}{{ k }}={{ v }}{% endfor %}',
                          context) == "a=1"
    # 100,000 steps in all are allowed: range's own limit, in one loop.
    assert render_subject('{% for i in range(100000) %}{% endfor %}ok', context) == "ok"
