"""What ``dispatch check`` verifies about email templates and editions.

Syntax errors and undefined variables name the template file and line;
every article's email is measured against Gmail's clip; template images
without alt text are warned about. For one article email and every digest
template, the fast path (render once, :class:`MessageFactory`) is built for a
sample recipient and compared with rendering for that recipient from scratch:
a template the fast path cannot personalise is reported with the template
line that printed the recipient value. The unsubscribe base URL is checked
too, since every message would be refused without an https one.
"""

from __future__ import annotations

import email
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage

import jinja2

from dispatch.config import Settings
from dispatch.errors import DispatchError, InputError, Problem, Severity
from dispatch.models import Article
from dispatch.render import images
from dispatch.render.checkcache import email_samples
from dispatch.render.edition import (
    Edition,
    Recipient,
    Rendered,
    first_name,
    render_article_edition,
    render_traced,
)
from dispatch.render.env import display_path, environment, site_dir, template_error
from dispatch.render.mime import MessageFactory, build_naive_message
from dispatch.render.settings import load_email_settings, size_problems
from dispatch.render.slots import PLACEHOLDERS, TOKEN
from dispatch.unsubscribe import public_base
from dispatch.values import urls

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


def template_syntax_problems(settings: Settings) -> list[Problem]:
    """The email settings and every template's syntax: what stops every email
    of the site, whichever article it carries."""
    try:
        load_email_settings(settings)
    except InputError as exc:
        return list(exc.problems)
    return _syntax_problems(settings)


def _alt_problems(html: str, where: str) -> list[Problem]:
    problems = []
    for tag in _IMG.findall(html):
        alt = _ALT.search(tag)
        if alt is None or not alt.group(2).strip():
            problems.append(Problem(where, f"image without alt text: {tag[:80]}", None, "alt",
                                    "alt=\"a short description\"", Severity.WARNING))
    return problems


def _aspect_problems(settings: Settings, article: Article, aspect: tuple[int, int],
                     shown: list[str]) -> list[Problem]:
    """One warning per article naming every image whose height was assumed
    (each image looked at is added to ``shown``)."""
    urls = [article.image or ""]
    for html in (article.body_html, article.sources_html,
                 article.takeaway.html if article.takeaway else ""):
        urls.extend(images.image_urls(html))
    shown.extend(url for url in urls if url)
    unknown = images.unknown_sizes(urls, settings.site.url, settings.root)
    if not unknown:
        return []
    named = ", ".join(unknown)
    return [Problem(article.source, f"pixel size unknown for {named}; height assumed from "
                    f"[email] image_aspect ({aspect[0]}:{aspect[1]})", None, "image",
                    "a PNG, GIF or JPEG under static/ (or the site folder)", Severity.WARNING)]


# Quotes, "&", "<" and a non-Latin letter: everything escaping can get wrong.
SAMPLE = Recipient(email="sample.reader@example.org", name="Zoë \"Sam\" O'Neil & <Co>",
                   unsubscribe_url="https://example.invalid/unsubscribe/check?a=1&b=2",
                   webview_url="https://example.invalid/email/check/?a=1&b=2",
                   preferences_url="https://example.invalid/preferences/check?a=1&b=2")
SAMPLE_DATE = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def _parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _shape(message: EmailMessage) -> tuple[list[tuple[str, str]], dict[str, str]]:
    # Folding is free to differ (the stdlib folds a long Message-ID, the
    # factory writes it on one legal line): compare values, not whitespace.
    headers = [(name, " ".join(str(value).split())) for name, value in message.items()]
    parts = {p.get_content_type(): str(p.get_content()) for p in message.iter_parts()}
    return headers, parts


def _sample_values(html: bool) -> dict[str, str]:
    """What the factory puts in place of each token for SAMPLE."""
    values = {"name": SAMPLE.name or "", "first_name": first_name(SAMPLE.name),
              "email": SAMPLE.email,
              "unsubscribe_url": SAMPLE.unsubscribe_url, "webview_url": SAMPLE.webview_url,
              "preferences_url": SAMPLE.preferences_url or ""}
    if html:
        values = {k: v.replace("&", "&amp;") for k, v in values.items()}
        for key in ("name", "first_name"):
            values[key] = values[key].replace("<", "&lt;").replace(">", "&gt;")
    return values


def _slot_before(template_text: str, at: int, html: bool) -> int | None:
    """Index of the last recipient value that starts at or before offset ``at``
    of the personalised text (None: the difference comes before any)."""
    values = {token: _sample_values(html)[key] for key, token in PLACEHOLDERS.items()}
    shift = 0
    found = None
    for number, match in enumerate(TOKEN.finditer(template_text)):
        start = match.start() + shift
        if start > at:
            break
        found = number
        shift += len(values[match.group()]) - len(match.group())
    return found


def _first_difference(a: str, b: str) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))


def personalisation_problems(settings: Settings, kind: str, articles: Sequence[Article],
                             edition: Edition, rendered: Rendered,
                             template: str | None) -> list[Problem]:
    """Fast path vs naive path for SAMPLE; a difference names the template line."""
    try:
        fast = MessageFactory(edition, settings).build(SAMPLE, date=SAMPLE_DATE)
        slow = build_naive_message(settings, kind, articles, edition.edition_id, SAMPLE,
                                   date=SAMPLE_DATE, template=template)
    except InputError as exc:
        return list(exc.problems)
    fast_headers, fast_parts = _shape(_parse(fast))
    slow_headers, slow_parts = _shape(_parse(slow))
    env = environment(settings)
    html_name = template or f"{kind}.html"
    problems: list[Problem] = []
    if fast_headers != slow_headers:
        problems.append(Problem(f"{kind} email", "personalised headers differ from a message "
                                "built for the recipient from scratch", None, "headers"))
    for ctype, source, uses in (("text/plain", edition.text, rendered.text_uses),
                                ("text/html", edition.html, rendered.html_uses)):
        got, want = fast_parts.get(ctype, ""), slow_parts.get(ctype, "")
        if got.rstrip("\n") == want.rstrip("\n"):
            continue
        at = _first_difference(got, want)
        slot = _slot_before(source, at, ctype == "text/html")
        name = html_name if ctype == "text/html" else html_name.rsplit(".", 1)[0] + ".txt"
        if name not in env.list_templates():
            name = f"{kind}.txt"  # as rendering does for a custom template without one
        path = display_path(env.get_template(name).filename, settings)
        line = None
        if slot is not None and len(uses) == len(TOKEN.findall(source)):
            use = uses[slot]
            path, line = display_path(use.filename, settings), use.line
        problems.append(Problem(
            path, f"the {ctype} part cannot be personalised after rendering: for a sample "
            f"reader it differs from rendering for them ({got[at:at + 30]!r} instead of "
            f"{want[at:at + 30]!r})", line, "template",
            "recipient values printed as {{ recipient.name }}, outside HTML attributes"))
    return problems


def unsubscribe_base_problems(settings: Settings) -> list[Problem]:
    """Every message is refused unless its unsubscribe URL is https (or local)."""
    base = public_base(settings)
    if urls.is_https_or_local(base):
        return []
    key = "web.public_url" if settings.web.public_url else "site.url"
    return [settings.problem(key, f"unsubscribe links would start with {base!r}; every email "
                             "would be refused because one-click unsubscribe (RFC 8058) needs "
                             "an https URL", "an https:// URL (http:// only for localhost)")]


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
    return email_problems(settings, email_samples(articles, now or datetime.now(UTC)))[0]


def email_problems(settings: Settings,
                   samples: Sequence[Article]) -> tuple[list[Problem], list[str]]:
    """The problems of the site's emails, rendered for ``samples`` (see
    :func:`~dispatch.render.checkcache.email_samples`), and the URL of every
    image the rendered emails and those articles show: what the problems
    depend on beside the templates and the articles."""
    try:
        es = load_email_settings(settings)
    except InputError as exc:
        return list(exc.problems), []
    problems = _syntax_problems(settings)
    if any(p.is_error for p in problems):
        return problems, []  # rendering would only repeat them
    samples = list(samples) or [_sample_article(settings)]
    shown: list[str] = []
    seen: set[str] = set()
    problems.extend(unsubscribe_base_problems(settings))
    compared = False
    for article in samples:
        try:
            if compared:
                edition = render_article_edition(settings, article, f"check-{article.slug}")
            else:
                # One article email is also personalised both ways and compared.
                compared = True
                edition, rendered = render_traced(settings, "article", [article],
                                                  f"check-{article.slug}")
                for p in personalisation_problems(settings, "article", [article], edition,
                                                  rendered, None):
                    if str(p) not in seen:
                        seen.add(str(p))
                        problems.append(p)
        except InputError as exc:
            for p in _relocate(exc, article):
                if str(p) not in seen:
                    seen.add(str(p))
                    problems.append(p)
            continue
        except DispatchError as exc:
            problems.append(Problem(article.source, str(exc), None, "email"))
            continue
        shown.extend(images.image_urls(edition.html))
        problems.extend(_aspect_problems(settings, article, es.image_aspect, shown))
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
            edition, rendered = render_traced(settings, "digest", latest, "check-digest",
                                              template=name)
        except InputError as exc:
            problems.extend(p for p in exc.problems if str(p) not in seen)
            continue
        shown.extend(images.image_urls(edition.html))
        problems.extend(p for p in personalisation_problems(settings, "digest", latest,
                                                            edition, rendered, name)
                        if str(p) not in seen)
        problems.extend(size_problems(f"digest of {len(latest)} articles ({name})",
                                      edition.html_size, es.allow_clip))
        problems.extend(p for p in _alt_problems(edition.html, name) if str(p) not in seen)
    return problems, shown


EMAIL_CHECKED = 10
"""How many of a pass's new or changed articles get the full email check
(the newest; as many as ``dispatch check`` renders). A fresh install's back
catalogue is never emailed, so rendering all of it would only cost time."""


def article_errors(settings: Settings, articles: Sequence[Article],
                   email_checked: int = EMAIL_CHECKED) -> dict[str, list[Problem]]:
    """The errors that keep each article from every channel, by source file.

    An article with errors reaches no channel: no feed, no social post, no
    email. Beyond the loading errors (which keep it out already), that is an
    email that cannot be rendered (a Gmail clip is an error unless ``[email]
    allow_clip``). A post that cannot be written for one network is not
    counted: the social stage keeps it, reports it on every pass and writes
    it after a fix, and its cause is as often a setting (a network's limit)
    as the article. Problems of the site rather than the article (a broken
    template) are not counted either: they stop every email, and ``dispatch
    check`` reports them. Never raises for a user mistake.
    """
    from dispatch.errors import DispatchError, InputError

    found: dict[str, list[Problem]] = {}
    emailed = sorted((a for a in articles if a.email), key=lambda a: (a.date, a.slug),
                     reverse=True)[:email_checked]
    if emailed and _emails_can_render(settings):
        from dispatch.render import render_article_edition

        for article in emailed:
            try:
                render_article_edition(settings, article, f"check-{article.slug}")
            except InputError as exc:
                for p in exc.problems:
                    if p.field == "size":
                        found.setdefault(article.source, []).append(Problem(
                            article.source, p.message, None, "email", p.expected, p.severity))
                    elif p.path == article.source and p.is_error:
                        found.setdefault(article.source, []).append(p)
            except DispatchError as exc:
                found.setdefault(article.source, []).append(
                    Problem(article.source, str(exc), None, "email"))
    return {source: problems for source, problems in found.items() if problems}


def _emails_can_render(settings: Settings) -> bool:
    """False when the email settings or templates are themselves broken: then
    no article is to blame, and check names the template."""
    return not any(p.is_error for p in template_syntax_problems(settings))
