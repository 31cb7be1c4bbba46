"""One Markdown file's text to an :class:`~dispatch.models.Article`."""

from __future__ import annotations

import math
import re
from pathlib import PurePosixPath
from zoneinfo import ZoneInfo

from dispatch.content import markdown as md
from dispatch.content.meta import FrontmatterError, split, validate
from dispatch.errors import Problem, Severity
from dispatch.models import Article, Takeaway
from dispatch.values import controls

WORDS_PER_MINUTE = 230
EXCERPT_CHARS = 280
# XML 1.0 forbids these; they also have no business in an email.
ILLEGAL_CONTROL = controls.BODY


def slug_from_path(source: str) -> str:
    stem = PurePosixPath(source).stem.lower()
    return re.sub(r"[^a-z0-9]+", "-", stem).strip("-") or "article"


def excerpt_of(text: str, limit: int = EXCERPT_CHARS) -> str:
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit].rsplit(" ", 1)[0].rstrip(",;:.-–—")
    return cut + "…"


def build_article(
    text: str, source: str, content_hash: str, site_url: str, tz: ZoneInfo
) -> tuple[Article | None, list[Problem]]:
    """Parse and validate one file; every problem found is returned."""
    try:
        parts = split(text, source)
    except FrontmatterError as exc:
        return None, [exc.problem]
    meta, problems = validate(parts, source, tz)

    body = parts.body
    for match in ILLEGAL_CONTROL.finditer(body):
        line = parts.body_line + body.count("\n", 0, match.start())
        problems.append(Problem(source, f"control character U+{ord(match.group()):04X} removed",
                                line, "body", "printable text", Severity.WARNING))
    body = ILLEGAL_CONTROL.sub("", body)
    if not body.strip():
        problems.append(Problem(source, "the article has no body", parts.body_line, "body",
                                "Markdown text after the closing '---'"))
    if meta is None or not body.strip():
        return None, problems

    slug = meta.slug or slug_from_path(source)
    url = f"{site_url}/{slug}/"
    parsed = md.parse(body)
    deep = md.nesting_issue(parsed.tokens)
    if deep is not None:
        # Rendering what was read would silently drop the rest of the article.
        problems.append(Problem(source, deep.message, parts.body_line + deep.line - 1, "body",
                                deep.expected))
        return None, problems
    for issue in md.body_issues(parsed.tokens):
        problems.append(Problem(source, issue.message, parts.body_line + issue.line - 1, "body",
                                issue.expected, Severity.WARNING))

    main, notes = md.split_footnotes(parsed.tokens)
    main = md.drop_empty_sources_heading(main)
    absolute = md.make_url_absolutizer(site_url, url)

    section = md.find_takeaway(main)
    takeaway: Takeaway | None = None
    if section is not None:
        start, end = section
        inner = main[start + 3:end]
        takeaway = Takeaway(
            html=md.sanitize(md.render(inner, parsed.env), absolute),
            text=md.plain_text(inner),
        )
        body_html = (
            md.render(main[:start], parsed.env)
            + '<div class="key-takeaway">\n' + md.render(main[start:end], parsed.env) + "</div>\n"
            + md.render(main[end:], parsed.env)
        )
    else:
        body_html = md.render(main, parsed.env)
    if meta.takeaway:
        override = md.parse(meta.takeaway)
        deep = md.nesting_issue(override.tokens)
        if deep is not None:
            problems.append(Problem(source, deep.message, parts.key_lines.get("takeaway"),
                                    "takeaway", deep.expected))
            return None, problems
        # Checked like the body: a script in the frontmatter is as unwelcome.
        for issue in md.body_issues(override.tokens):
            problems.append(Problem(source, issue.message, parts.key_lines.get("takeaway"),
                                    "takeaway", issue.expected, Severity.WARNING))
        takeaway = Takeaway(
            html=md.sanitize(md.render(override.tokens, override.env), absolute),
            text=md.plain_text(override.tokens),
        )
    if takeaway is None:
        problems.append(Problem(source, "no 'Key takeaway' section: social posts will use the "
                                "summary", parts.body_line, "body",
                                "a '## Key takeaway' heading", Severity.WARNING))

    plain = md.plain_text(main)
    words = len(plain.split())
    summary = meta.summary or md.first_paragraph_text(main)
    image = absolute(meta.image) if meta.image else None
    if image and not meta.image_alt:
        problems.append(Problem(source, "image has no image_alt", None, "image_alt",
                                "a short description of the image", Severity.WARNING))

    article = Article(
        slug=slug,
        source=source,
        title=meta.title,
        date=meta.date,
        summary=summary,
        body_markdown=body,
        body_html=md.sanitize(body_html, absolute),
        sources_html=md.sanitize(md.render(notes, parsed.env), absolute) if notes else "",
        sources=md.footnote_texts(notes),
        url=url,
        content_hash=content_hash,
        reading_minutes=max(1, math.ceil(words / WORDS_PER_MINUTE)),
        excerpt=excerpt_of(plain),
        category=meta.category,
        tags=meta.tags,
        author=meta.author,
        status="draft" if meta.status == "draft" else "published",
        updated=meta.updated,
        image=image,
        image_alt=meta.image_alt,
        canonical_url=meta.canonical_url,
        takeaway=takeaway,
        social=meta.social,
        email=meta.email,
    )
    return article, problems
