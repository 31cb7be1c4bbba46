"""Markdown to sanitised HTML, plus the pieces other stages need.

The body is parsed once into markdown-it tokens; the key-takeaway section,
the footnotes (the article's sources) and the plain-text forms are all cut
from that one token stream, so they can never disagree with the body.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from html import unescape
from typing import Any
from urllib.parse import urljoin, urlsplit

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.footnote import footnote_plugin

TAKEAWAY_HEADING = re.compile(r"^\s*key\s+takeaways?\s*:?\s*$", re.IGNORECASE)
SOURCES_HEADING = re.compile(r"^\s*(sources|references|notes)\s*:?\s*$", re.IGNORECASE)
DANGEROUS_HTML = re.compile(
    r"<\s*(script|iframe|form|object|embed|style)\b|\son[a-z]+\s*=|javascript\s*:",
    re.IGNORECASE,
)

_ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "div", "em", "figcaption", "figure",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "s", "section",
    "span", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title", "id", "class"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"style", "align"},
    "th": {"style", "align"},
    "ol": {"start", "class"},
    "li": {"id", "class"},
    "sup": {"class"},
    "section": {"class"},
    "div": {"class"},
    "hr": {"class"},
    "code": {"class"},
}


MAX_DEPTH = 40
"""Lists and block quotes may nest this deep; deeper is an error naming the
line. markdown-it's own limit (``maxNesting``) counts tokens, not levels, and
at CommonMark's default of 20 a list ten levels deep silently ended the
article there: everything after it, the key takeaway included, was gone."""

_TOKEN_NESTING = 4 * MAX_DEPTH + 40
"""markdown-it's limit, set well above what MAX_DEPTH levels need (a list
level opens two tokens, a paragraph a third; tables and footnotes add a
few), so the parser never stops silently before our check speaks."""

_CONTAINERS = {"bullet_list_open", "ordered_list_open", "blockquote_open"}


def _make_parser() -> MarkdownIt:
    # CommonMark keeps raw HTML; nh3 removes what must not survive, and
    # body_problems() reports it so the writer knows.
    parser = MarkdownIt("commonmark").enable("table").use(footnote_plugin)
    parser.options["maxNesting"] = _TOKEN_NESTING
    return parser


_PARSER = _make_parser()


@dataclass(frozen=True, slots=True)
class Parsed:
    tokens: list[Token]
    env: dict[str, Any]


def parse(body: str) -> Parsed:
    env: dict[str, Any] = {}
    return Parsed(_PARSER.parse(body, env), env)


def render(tokens: Sequence[Token], env: dict[str, Any]) -> str:
    return str(_PARSER.renderer.render(list(tokens), _PARSER.options, env))


_HIDDEN_OPEN = re.compile(r"<\s*(script|style)\b", re.IGNORECASE)
_HIDDEN_CLOSE = re.compile(r"<\s*/\s*(script|style)\s*>", re.IGNORECASE)


def inline_text(tokens: Iterable[Token]) -> str:
    """Plain text of inline children: markup dropped, footnote markers dropped,
    and what sits between inline ``<script>``/``<style>`` tags dropped too
    (the HTML sanitiser removes those elements whole; the text must match)."""
    out: list[str] = []
    hidden = False
    for tok in tokens:
        if tok.type == "html_inline":
            if _HIDDEN_CLOSE.search(tok.content):
                hidden = False
            elif _HIDDEN_OPEN.search(tok.content):
                hidden = True
        elif hidden:
            continue
        elif tok.type in ("text", "code_inline"):
            out.append(tok.content)
        elif tok.type in ("softbreak", "hardbreak"):
            out.append(" ")
        elif tok.type == "image":
            out.append(tok.content or "")
    return "".join(out)


def plain_text(tokens: Sequence[Token]) -> str:
    """Block tokens to plain text, one paragraph per line-pair."""
    blocks: list[str] = []
    for tok in tokens:
        if tok.type == "inline":
            text = " ".join(inline_text(tok.children or []).split())
            if text:
                blocks.append(text)
    return "\n\n".join(blocks)


def heading_text(tokens: Sequence[Token], index: int) -> str:
    return inline_text(tokens[index + 1].children or [])


def _heading_level(tok: Token) -> int:
    return int(tok.tag[1])


def find_takeaway(tokens: Sequence[Token]) -> tuple[int, int] | None:
    """Token range [start, end) of the key-takeaway section, heading included.

    Level 2 or deeper; the section runs to the next heading of the same or a
    higher level, or to the footnotes, or to the end.
    """
    for i, tok in enumerate(tokens):
        if tok.type != "heading_open" or _heading_level(tok) < 2:
            continue
        if not TAKEAWAY_HEADING.match(heading_text(tokens, i)):
            continue
        level = _heading_level(tok)
        end = len(tokens)
        for j in range(i + 3, len(tokens)):
            other = tokens[j]
            if other.type == "footnote_block_open" or (
                other.type == "heading_open" and _heading_level(other) <= level
            ):
                end = j
                break
        return i, end
    return None


def split_footnotes(tokens: list[Token]) -> tuple[list[Token], list[Token]]:
    for i, tok in enumerate(tokens):
        if tok.type == "footnote_block_open":
            return tokens[:i], tokens[i:]
    return tokens, []


def drop_empty_sources_heading(tokens: list[Token]) -> list[Token]:
    """A "Sources" heading that held only footnote definitions is empty once
    the footnotes move to their own block; drop it rather than ship a heading
    with nothing under it."""
    for i, tok in enumerate(tokens):
        if tok.type != "heading_open" or not SOURCES_HEADING.match(heading_text(tokens, i)):
            continue
        following = tokens[i + 3] if i + 3 < len(tokens) else None
        if following is None or (
            following.type == "heading_open" and _heading_level(following) <= _heading_level(tok)
        ):
            return tokens[:i] + tokens[i + 3:]
    return tokens


def footnote_texts(tokens: Sequence[Token]) -> tuple[str, ...]:
    texts: list[str] = []
    current: list[str] | None = None
    for tok in tokens:
        if tok.type == "footnote_open":
            current = []
        elif tok.type == "footnote_close" and current is not None:
            texts.append(" ".join(" ".join(current).split()))
            current = None
        elif tok.type == "inline" and current is not None:
            current.append(inline_text(tok.children or []))
    return tuple(texts)


def make_url_absolutizer(site_url: str, page_url: str) -> Callable[[str], str]:
    base = site_url.rstrip("/") + "/"

    def absolute(value: str) -> str:
        value = value.strip()
        if value.startswith("#"):
            # Footnote anchors: a bare fragment is a relative URL to a feed
            # reader; pointing at the article keeps it working everywhere.
            return page_url + value
        if urlsplit(value).scheme:
            return value
        return urljoin(base, value)

    return absolute


def sanitize(html: str, absolutize: Callable[[str], str]) -> str:
    def attribute_filter(tag: str, attr: str, value: str) -> str | None:
        if attr in ("href", "src"):
            return absolutize(value)
        return value

    return str(nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel=None,
        strip_comments=True,
        attribute_filter=attribute_filter,
    ))


@dataclass(frozen=True, slots=True)
class BodyIssue:
    line: int
    message: str
    expected: str | None = None


def body_issues(tokens: Sequence[Token]) -> list[BodyIssue]:
    """Things in the body a writer should hear about; lines are 1-based within the body."""
    issues: list[BodyIssue] = []

    def walk(toks: Sequence[Token], line: int) -> None:
        for tok in toks:
            here = tok.map[0] + 1 if tok.map else line
            if tok.type in ("html_block", "html_inline") and DANGEROUS_HTML.search(tok.content):
                issues.append(BodyIssue(here, "raw HTML with scripts, frames, forms, event "
                                        "handlers or javascript: links was removed",
                                        "plain Markdown or harmless HTML"))
            elif tok.type == "image" and not (tok.content or "").strip():
                issues.append(BodyIssue(here, f"image {tok.attrs.get('src')!s} has no alt text",
                                        "![description](path)"))
            elif tok.type == "link_open" and str(tok.attrs.get("href", "")).lower().startswith(
                "javascript:"
            ):
                issues.append(BodyIssue(here, "javascript: link removed", "an http(s) URL"))
            if tok.children:
                walk(tok.children, here)

    walk(tokens, 1)
    return issues


def nesting_issue(tokens: Sequence[Token]) -> BodyIssue | None:
    """The first place lists or quotes nest deeper than MAX_DEPTH (or deep
    enough that markdown-it may have stopped reading), as an issue; None if
    the whole body was read."""
    depth = 0
    for tok in tokens:
        if tok.type in _CONTAINERS:
            depth += 1
        elif tok.type in ("bullet_list_close", "ordered_list_close", "blockquote_close"):
            depth -= 1
        if depth > MAX_DEPTH or tok.level >= _TOKEN_NESTING - 1:
            line = tok.map[0] + 1 if tok.map else 1
            return BodyIssue(line, f"lists or quotes nest more than {MAX_DEPTH} levels deep "
                             "here; the article cannot be rendered whole",
                             f"at most {MAX_DEPTH} levels of nested lists and quotes")
    return None


def first_paragraph_text(tokens: Sequence[Token]) -> str:
    for i, tok in enumerate(tokens):
        if tok.type == "paragraph_open" and tok.level == 0:
            return " ".join(inline_text(tokens[i + 1].children or []).split())
    return ""


def strip_tags(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())
