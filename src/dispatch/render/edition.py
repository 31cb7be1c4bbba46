"""Render an edition once: templates → HTML → inlined CSS, plus the text part.

Per-recipient values are rendered as opaque placeholder tokens that survive
Jinja, premailer and lxml untouched; :mod:`dispatch.render.mime` swaps them
for each recipient's values. Templates see them as
:class:`~dispatch.render.slots.Slot` objects that can only be printed, and
a rendered edition is refused when a token was altered (a leftover
fragment) or when ``recipient.name`` landed inside an HTML attribute; both
errors name the template file and line. :func:`render_for_recipient` renders the same
templates with real values instead: it is the slow, obvious path that the
fast one must equal (tests) and beat (bench).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import jinja2
from markupsafe import Markup

from dispatch.config import Settings
from dispatch.content import markdown as md
from dispatch.errors import Problem, TemplateError
from dispatch.models import Article
from dispatch.render import images, links, reshape, text
from dispatch.render.env import display_path, environment, render_subject, template_error
from dispatch.render.inline import inline_css
from dispatch.render.settings import EmailSettings, load_email_settings, size_problems
from dispatch.render.slots import FRAGMENT, PLACEHOLDERS, TOKEN, Use, slots
from dispatch.values import urls

log = logging.getLogger(__name__)

__all__ = ["PLACEHOLDERS", "ArticleView", "Edition", "Recipient", "Use"]


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str | None
    """The fallback from ``[email] name_fallback`` is used when None or empty."""
    unsubscribe_url: str
    webview_url: str
    unsubscribe_mailto: str | None = None
    preferences_url: str | None = None
    """The reader's preference page; the unsubscribe URL when not given."""


@dataclass(frozen=True)
class Edition:
    """One email for one audience, rendered once; stored once by the outbox."""

    edition_id: str
    kind: str
    """"article" or "digest"."""
    subject: str
    html: str
    """Inlined HTML holding the recipient placeholders."""
    text: str
    """Plain-text part holding the recipient placeholders."""
    preheader: str = ""
    list_id: str = ""
    article_slugs: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, data: str) -> Edition:
        raw = json.loads(data)
        raw["article_slugs"] = tuple(raw.get("article_slugs", ()))
        return cls(**raw)

    @property
    def html_size(self) -> int:
        return len(self.html.encode("utf-8"))


@dataclass(frozen=True)
class ArticleView:
    """What templates see of an article: links tracked, HTML email-ready."""

    slug: str
    title: str
    dek: str
    url: str
    category: str | None
    author: str | None
    date: str
    reading_minutes: int
    image: str | None
    image_alt: str
    image_height: int | None
    body_html: Markup
    sources_html: Markup
    sources: tuple[str, ...]
    takeaway_html: Markup
    takeaway_text: str
    takeaway_in_body: bool
    """The body has its own "Key takeaway" section (already highlighted there);
    when False, a frontmatter ``takeaway:`` is shown by the template instead."""
    disclaimer_in_body: bool
    """The body already has a paragraph saying what ``[email] disclaimer`` says;
    the single-article email then leaves the setting's copy out."""
    excerpt: str
    body_text: str


def _utm(settings: Settings, es: EmailSettings, edition_id: str) -> list[tuple[str, str]]:
    params = list(es.utm)
    if es.utm and es.utm_campaign_from_edition:
        params.append(("utm_campaign", edition_id))
    return params


def article_view(settings: Settings, es: EmailSettings, article: Article,
                 utm: Sequence[tuple[str, str]], *, with_text: bool) -> ArticleView:
    site = settings.site.url

    def height_for(src: str, width: int) -> int:
        size = images.site_image_size(src, site, settings.root)
        return images.scaled_height(width, size, es.image_aspect)

    def email_html(html: str) -> Markup:
        html = reshape.for_email(html)
        return Markup(links.email_images(links.track_html(html, site, utm),
                                         es.image_alt_fallback, height_for))

    def text_link(href: str) -> str | None:
        absolute = md.make_url_absolutizer(site, article.url)(href)
        if not urls.is_web_or_mail(absolute):
            return None  # javascript: and friends never reach the reader
        return links.add_utm(absolute, site, utm)

    body_text = ""
    if with_text:
        parsed = md.parse(article.body_markdown)
        main, _notes = md.split_footnotes(parsed.tokens)
        body_text = text.body_text(md.drop_empty_sources_heading(main), text_link)
    local = article.date.astimezone(settings.site.tz)
    return ArticleView(
        slug=article.slug,
        title=article.title,
        dek=article.summary,
        url=links.add_utm(article.url, site, utm),
        category=article.category,
        author=article.author,
        date=f"{local.day} {local:%B %Y}",
        reading_minutes=article.reading_minutes,
        image=article.image,
        image_alt=(article.image_alt or "").strip() or es.image_alt_fallback,
        image_height=height_for(article.image, links.CONTENT_WIDTH) if article.image else None,
        body_html=email_html(article.body_html),
        sources_html=email_html(article.sources_html),
        sources=article.sources,
        takeaway_html=email_html(article.takeaway.html) if article.takeaway else Markup(""),
        takeaway_text=article.takeaway.text if article.takeaway else "",
        takeaway_in_body='class="key-takeaway"' in article.body_html,
        disclaimer_in_body=repeats(es.disclaimer, article.body_markdown),
        excerpt=article.excerpt,
        body_text=body_text,
    )


@dataclass(frozen=True)
class _Job:
    """Everything one render needs except the recipient."""

    kind: str
    edition_id: str
    html_template: str
    text_template: str
    context: Mapping[str, Any]
    subject: str
    preheader: str
    slugs: tuple[str, ...]


def _refuse_reserved(settings: Settings, es: EmailSettings, articles: Sequence[Article],
                     intro: str | None) -> None:
    """Placeholder text in content would be personalised as if a template printed it."""
    problems = []
    for a in articles:
        fields = (a.title, a.summary, a.body_markdown, a.category or "", a.author or "",
                  a.image or "", a.image_alt or "", a.takeaway.text if a.takeaway else "")
        if any(FRAGMENT.search(f) for f in fields):
            problems.append(Problem(a.source, "contains text dispatch reserves for recipient "
                                    "placeholders (DISPATCHxRCPT…)", None, "body",
                                    "any other text"))
    config = (intro or "", es.digest_intro, es.disclaimer, es.why, es.name_fallback,
              es.first_name_fallback,
              settings.site.title, settings.sender.name, settings.sender.postal_address)
    if any(FRAGMENT.search(f) for f in config):
        problems.append(Problem("dispatch.toml", "a setting contains text dispatch reserves "
                                "for recipient placeholders (DISPATCHxRCPT…)", None, "email",
                                "any other text"))
    if problems:
        raise TemplateError(problems)


def _prepare(settings: Settings, kind: str, articles: Sequence[Article], edition_id: str,
             subject: str | None, intro: str | None, template: str | None) -> _Job:
    es = load_email_settings(settings)
    if not articles:
        raise TemplateError(f"edition {edition_id}: no articles to render")
    _refuse_reserved(settings, es, articles, intro)
    utm = _utm(settings, es, edition_id)
    views = [article_view(settings, es, a, utm, with_text=kind == "article") for a in articles]
    site = settings.site
    base: dict[str, Any] = {
        "site": {"title": site.title, "url": site.url, "language": site.language,
                 "description": site.description, "home": links.add_utm(site.url + "/",
                                                                        site.url, utm)},
        "sender": {"name": settings.sender.name, "email": settings.sender.email,
                   "postal_address": settings.sender.postal_address},
        "email": {"why": es.why_line(settings), "disclaimer": es.disclaimer},
        "kind": kind,
        "edition_id": edition_id,
        "articles": views,
        "article": views[0],
        "intro": intro if intro is not None else es.digest_intro,
    }
    default_subject = es.article_subject if kind == "article" else es.digest_subject
    subject_text = render_subject(subject if subject is not None else default_subject, base)
    if not subject_text:
        raise TemplateError(f"edition {edition_id}: the subject is empty")
    # A digest's preheader (the inbox line under the subject) is about its lead
    # article, not the intro every edition shares.
    lead = views[0]
    preheader = lead.dek if kind == "article" else (lead.takeaway_text or lead.title)
    html_name = template or f"{kind}.html"
    text_name = html_name.rsplit(".", 1)[0] + ".txt"
    env = environment(settings)
    if text_name not in env.list_templates(extensions=["txt"]):
        text_name = f"{kind}.txt"
    return _Job(kind, edition_id, html_name, text_name,
                {**base, "subject": subject_text, "preheader": preheader}, subject_text,
                preheader, tuple(a.slug for a in articles))


def _css(settings: Settings, name: str) -> str:
    env = environment(settings)
    assert env.loader is not None
    try:
        source, _filename, _uptodate = env.loader.get_source(env, name)
    except jinja2.TemplateNotFound:
        return ""
    return source


@dataclass(frozen=True)
class Rendered:
    """One render of an edition's templates, with where recipient values went."""

    html: str
    text: str
    html_uses: tuple[Use, ...]
    """Recipient values printed by the HTML templates, in output order."""
    text_uses: tuple[Use, ...]


def _where(settings: Settings, use: Use | None, fallback: str) -> tuple[str, int | None]:
    if use is None:
        return fallback, None
    return display_path(use.filename, settings), use.line


def _damaged(output: str) -> list[int]:
    """Offsets of token fragments that are not part of an intact token."""
    intact = [m.span() for m in TOKEN.finditer(output)]
    return [m.start() for m in FRAGMENT.finditer(output)
            if not any(a <= m.start() < b for a, b in intact)]


def _located(settings: Settings, output: str, uses: Sequence[Use], at: int,
             fallback: str) -> tuple[str, int | None]:
    """The template line that printed the recipient value at offset ``at``.

    Values are printed in output order, so the n-th token (intact or damaged)
    in the output is the n-th recorded use, as long as the counts agree; when
    they do not (a value captured with {% set %} and printed twice), only the
    template file is named: a wrong line is worse than none.
    """
    marks = sorted([m.start() for m in TOKEN.finditer(output)] + _damaged(output))
    if len(marks) != len(uses) or at not in marks:
        return fallback, None
    return _where(settings, uses[marks.index(at)], fallback)


def _in_attribute(html: str, at: int) -> bool:
    return html.rfind("<", 0, at) > html.rfind(">", 0, at)


def _recipient_problems(settings: Settings, job: _Job, html: str, html_uses: Sequence[Use],
                        plain: str, text_uses: Sequence[Use]) -> list[Problem]:
    """What would make the late substitution differ from rendering per recipient."""
    env = environment(settings)
    problems: list[Problem] = []
    for output, uses, name in ((html, html_uses, job.html_template),
                               (plain, text_uses, job.text_template)):
        fallback = display_path(env.get_template(name).filename, settings)
        for at in _damaged(output)[:1]:
            path, line = _located(settings, output, uses, at, fallback)
            problems.append(Problem(
                path, "a recipient value was changed after printing (its placeholder "
                f"came out as {output[at:at + 24]!r}); it would reach every reader "
                "unpersonalised", line, "template", "{{ recipient.name }} printed on its own"))
    for match in TOKEN.finditer(html):
        if match.group() in (PLACEHOLDERS["name"], PLACEHOLDERS["first_name"]) and \
                _in_attribute(html, match.start()):
            fallback = display_path(env.get_template(job.html_template).filename, settings)
            path, line = _located(settings, html, html_uses, match.start(), fallback)
            problems.append(Problem(
                path, "recipient.name may be used in text only, not inside an HTML attribute "
                "or comment (names are free text; quotes in them cannot be substituted "
                "safely there)",
                line, "template", "{{ recipient.name }} between tags"))
            break
    return problems


def _render_traced(settings: Settings, job: _Job, values: Mapping[str, str]) -> Rendered:
    env = environment(settings)
    html_uses: list[Use] = []
    text_uses: list[Use] = []
    try:
        html = env.get_template(job.html_template).render(
            {**job.context, "recipient": slots(values, html_uses)})
        plain = env.get_template(job.text_template).render(
            {**job.context, "recipient": slots(values, text_uses)})
    # ArithmeticError: {{ 1 / 0 }} is a template mistake like any other, and
    # `dispatch check` must name its line rather than stop with a traceback.
    except (jinja2.TemplateError, TypeError, ValueError, AttributeError,
            ArithmeticError) as exc:
        raise template_error(exc, settings) from None
    if values is PLACEHOLDERS:
        problems = _recipient_problems(settings, job, html, html_uses, plain, text_uses)
        if problems:
            raise TemplateError(problems)
    es = load_email_settings(settings)
    where = f"{job.kind} email {job.edition_id}"
    # Inlining only adds bytes: refuse before paying for premailer.
    problems = size_problems(where, len(html.encode("utf-8")), es.allow_clip)
    if any(p.is_error for p in problems):
        raise TemplateError(problems)
    html = inline_css(html, _css(settings, "inline.css"), _css(settings, "head.css"))
    problems = size_problems(where, len(html.encode("utf-8")), es.allow_clip)
    if any(p.is_error for p in problems):
        raise TemplateError(problems)
    for problem in problems:
        log.warning("%s", problem)
    return Rendered(html, plain.strip("\n") + "\n", tuple(html_uses), tuple(text_uses))


def _render(settings: Settings, job: _Job, values: Mapping[str, str]) -> tuple[str, str]:
    rendered = _render_traced(settings, job, values)
    return rendered.html, rendered.text


def _edition_from(settings: Settings, job: _Job, rendered: Rendered) -> Edition:
    es = load_email_settings(settings)
    return Edition(edition_id=job.edition_id, kind=job.kind, subject=job.subject,
                   html=rendered.html, text=rendered.text, preheader=job.preheader,
                   list_id=es.list_id_for(settings), article_slugs=job.slugs)


def _edition(settings: Settings, job: _Job) -> Edition:
    return _edition_from(settings, job, _render_traced(settings, job, PLACEHOLDERS))


def render_traced(settings: Settings, kind: str, articles: Sequence[Article], edition_id: str,
                  *, template: str | None = None) -> tuple[Edition, Rendered]:
    """An edition plus where its templates printed recipient values (for checks)."""
    job = _prepare(settings, kind, list(articles), edition_id, None, None, template)
    rendered = _render_traced(settings, job, PLACEHOLDERS)
    return _edition_from(settings, job, rendered), rendered


def render_article_edition(settings: Settings, article: Article, edition_id: str, *,
                           subject: str | None = None, template: str | None = None) -> Edition:
    """The single-article email, rendered and inlined once."""
    job = _prepare(settings, "article", [article], edition_id, subject, None, template)
    return _edition(settings, job)


def render_digest_edition(settings: Settings, articles: Sequence[Article], edition_id: str, *,
                          subject: str | None = None, intro: str | None = None,
                          template: str | None = None) -> Edition:
    """A digest of ``articles`` (in the order given), rendered and inlined once."""
    job = _prepare(settings, "digest", list(articles), edition_id, subject, intro, template)
    return _edition(settings, job)


_TITLES = {"dr", "mr", "mrs", "ms", "mx", "miss", "prof", "sir", "dame"}


def first_name(name: str | None) -> str:
    """What a greeting calls the reader: the first word of the name ("Ann" of
    "Ann Reader"), the part after the comma of "Reader, Ann", a title such as
    "Dr" skipped; "" for no name (the fallback then applies)."""
    if not name:
        return ""
    family, comma, given = name.partition(",")
    words = (given if comma and given.strip() else family).split()
    if len(words) > 1 and words[0].rstrip(".").lower() in _TITLES:
        words = words[1:]
    return words[0] if words else ""


_WORD = re.compile(r"[^\W\d_]{3,}")


def repeats(disclaimer: str, body_markdown: str) -> bool:
    """Whether one paragraph of the body already says what ``disclaimer`` says:
    at least 80% of the disclaimer's words (three letters or more) in it."""
    wanted = {w.lower() for w in _WORD.findall(disclaimer)}
    if not wanted:
        return False
    for paragraph in re.split(r"\n\s*\n", body_markdown):
        found = {w.lower() for w in _WORD.findall(paragraph)}
        if len(wanted & found) >= 0.8 * len(wanted):
            return True
    return False


def recipient_values(recipient: Recipient, fallback: str,
                     first_fallback: str = "there") -> dict[str, str]:
    return {"name": recipient.name or fallback, "email": recipient.email,
            "unsubscribe_url": recipient.unsubscribe_url, "webview_url": recipient.webview_url,
            "preferences_url": recipient.preferences_url or recipient.unsubscribe_url,
            "first_name": first_name(recipient.name) or first_fallback}


def render_for_recipient(settings: Settings, kind: str, articles: Sequence[Article],
                         edition_id: str, recipient: Recipient, *, subject: str | None = None,
                         intro: str | None = None,
                         template: str | None = None) -> tuple[Edition, str, str]:
    """The naive path: render (Jinja + premailer) with this recipient's real values.

    Returns the edition metadata (html/text hold the personalised result) and
    the personalised HTML and text.
    """
    job = _prepare(settings, kind, list(articles), edition_id, subject, intro, template)
    es = load_email_settings(settings)
    html, plain = _render(settings, job, recipient_values(recipient, es.name_fallback,
                                                          es.first_name_fallback))
    edition = Edition(edition_id=edition_id, kind=kind, subject=job.subject, html=html,
                      text=plain, preheader=job.preheader, list_id=es.list_id_for(settings),
                      article_slugs=job.slugs)
    return edition, html, plain
