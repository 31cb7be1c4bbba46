"""What ``dispatch check`` verifies about email templates and editions.

Syntax errors and undefined variables name the template file and line;
every article's email is measured against Gmail's clip; template images
without alt text are warned about.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

import jinja2

from dispatch.config import Settings
from dispatch.errors import DispatchError, InputError, Problem, Severity
from dispatch.models import Article
from dispatch.render import images
from dispatch.render.edition import render_article_edition, render_digest_edition
from dispatch.render.env import environment, site_dir, template_error
from dispatch.render.settings import load_email_settings, size_problems

_IMG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_ALT = re.compile(r'\salt=(["\'])(.*?)\1', re.IGNORECASE | re.DOTALL)
DIGEST_SAMPLE = 10
_LAYOUT = {"base.html", "macros.html", "base.txt"}


def _sample_article(settings: Settings) -> Article:
    """Stands in when a site has no article yet, so templates still get checked."""
    return Article(
        slug="sample", source="(sample)", title="Sample article", date=datetime(2024, 1, 1,
                                                                               tzinfo=UTC),
        summary="A sample dek.", body_markdown="Sample body.\n", body_html="<p>Sample body.</p>",
        sources_html="", sources=(), url=f"{settings.site.url}/sample/", content_hash="0",
        reading_minutes=1, excerpt="Sample body.")


def _syntax_problems(settings: Settings) -> list[Problem]:
    env = environment(settings)
    problems: list[Problem] = []
    for name in env.list_templates(extensions=["html", "txt"]):
        if name.upper().startswith("README"):
            continue
        try:
            env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            problems.extend(template_error(exc, settings).problems)
    return problems


def _alt_problems(html: str, where: str) -> list[Problem]:
    problems = []
    for tag in _IMG.findall(html):
        alt = _ALT.search(tag)
        if alt is None or not alt.group(2).strip():
            problems.append(Problem(where, f"image without alt text: {tag[:80]}", None, "alt",
                                    "alt=\"a short description\"", Severity.WARNING))
    return problems


def _aspect_problems(settings: Settings, article: Article,
                     aspect: tuple[int, int]) -> list[Problem]:
    """One warning per article naming every image whose height was assumed."""
    urls = [article.image or ""]
    for html in (article.body_html, article.sources_html,
                 article.takeaway.html if article.takeaway else ""):
        urls.extend(images.image_urls(html))
    unknown = images.unknown_sizes(urls, settings.site.url, settings.root)
    if not unknown:
        return []
    named = ", ".join(unknown)
    return [Problem(article.source, f"pixel size unknown for {named}; height assumed from "
                    f"[email] image_aspect ({aspect[0]}:{aspect[1]})", None, "image",
                    "a PNG, GIF or JPEG under static/ (or the site folder)", Severity.WARNING)]


CHECK_NEWEST = 10
"""How many of the newest published articles `dispatch check` renders in full."""


def _relocate(exc: InputError, article: Article) -> list[Problem]:
    """Size problems name the article; template problems keep their file."""
    out = []
    for p in exc.problems or (Problem(article.source, str(exc)),):
        if p.field == "size":
            out.append(Problem(article.source, p.message, None, "email", p.expected, p.severity))
        else:
            out.append(p)
    return out


def template_problems(settings: Settings, articles: Sequence[Article],
                      now: datetime | None = None) -> list[Problem]:
    """Every email-template problem of the site; never raises for a user mistake."""
    try:
        es = load_email_settings(settings)
    except InputError as exc:
        return list(exc.problems)
    problems = _syntax_problems(settings)
    if any(p.is_error for p in problems):
        return problems  # rendering would only repeat them
    current = now or datetime.now(UTC)
    # Only articles that can still be emailed are worth a full render: the
    # scheduled ones and the newest published ones (a digest takes the most
    # recent). Rendering a 10,000-article archive through premailer would
    # make `dispatch check` take minutes and tell nobody anything new.
    emailable = [a for a in articles if a.email and a.status == "published"]
    scheduled = [a for a in emailable if not a.is_published(current)]
    recent = sorted((a for a in emailable if a.is_published(current)),
                    key=lambda a: (a.date, a.slug), reverse=True)[:CHECK_NEWEST]
    samples = scheduled + recent or [_sample_article(settings)]
    seen: set[str] = set()
    for article in samples:
        try:
            edition = render_article_edition(settings, article, f"check-{article.slug}")
        except InputError as exc:
            for p in _relocate(exc, article):
                if str(p) not in seen:
                    seen.add(str(p))
                    problems.append(p)
            continue
        except DispatchError as exc:
            problems.append(Problem(article.source, str(exc), None, "email"))
            continue
        problems.extend(_aspect_problems(settings, article, es.image_aspect))
        for p in size_problems(article.source, edition.html_size, es.allow_clip):
            problems.append(Problem(p.path, p.message, None, "email", p.expected, p.severity))
        for p in _alt_problems(edition.html, "article email"):
            if str(p) not in seen:
                seen.add(str(p))
                problems.append(p)
    latest = sorted(samples, key=lambda a: a.date, reverse=True)[:DIGEST_SAMPLE]
    custom = [n for n in environment(settings).list_templates(extensions=["html"])
              if n not in _LAYOUT and n != "article.html"
              and (site_dir(settings) / n).exists()]
    for name in ["digest.html", *[n for n in custom if n != "digest.html"]]:
        try:
            edition = render_digest_edition(settings, latest, "check-digest", template=name)
        except InputError as exc:
            problems.extend(p for p in exc.problems if str(p) not in seen)
            continue
        problems.extend(size_problems(f"digest of {len(latest)} articles ({name})",
                                      edition.html_size, es.allow_clip))
        problems.extend(p for p in _alt_problems(edition.html, name) if str(p) not in seen)
    return problems
