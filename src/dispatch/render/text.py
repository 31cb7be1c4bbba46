"""The plain-text part, written from the article's Markdown tokens.

Scraping the HTML loses structure; the token stream still knows what is a
heading, a list item, a link or a footnote. Links are written ``text (url)``,
footnote markers ``[n]`` matching the numbered sources, and every paragraph
is wrapped at 78 columns without ever breaking a URL.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import nh3
from markdown_it.token import Token

from dispatch.content import markdown as md

WIDTH = 78


def wrap(text: str, width: int = WIDTH, indent: str = "", first: str | None = None) -> str:
    """Wrap one paragraph; words longer than the line (URLs) stay whole."""
    lines = text.split("\n")
    out: list[str] = []
    for number, line in enumerate(lines):
        lead = (indent if first is None else first) if number == 0 else indent
        filled = textwrap.fill(" ".join(line.split()), width=width, initial_indent=lead,
                               subsequent_indent=indent, break_long_words=False,
                               break_on_hyphens=False)
        out.append(filled or lead.rstrip())
    return "\n".join(out)


def _strip_html(html: str) -> str:
    # nh3 drops <script>/<style> with their content; everything else keeps its text.
    return " ".join(md.strip_tags(nh3.clean(html, tags=set())).split())


@dataclass
class _Writer:
    link: Callable[[str], str | None]
    """Makes a link target absolute (and tracked), or None to drop it."""
    blocks: list[tuple[str, bool]] = field(default_factory=list)
    lists: list[list[int]] = field(default_factory=list)
    """One entry per open list: [next number] for ordered, [-1] for bullets."""
    quote: int = 0
    marker: str | None = None
    first_in_list: bool = False
    first_row: bool = False

    def inline(self, children: Sequence[Token]) -> str:
        out: list[str] = []
        hrefs: list[tuple[str | None, int]] = []
        for tok in children:
            kind = tok.type
            if kind in ("text", "code_inline"):
                out.append(tok.content)
            elif kind == "softbreak":
                out.append(" ")
            elif kind == "hardbreak":
                out.append("\n")
            elif kind == "link_open":
                hrefs.append((self.link(str(tok.attrs.get("href", ""))), len(out)))
            elif kind == "link_close" and hrefs:
                href, start = hrefs.pop()
                label = "".join(out[start:]).strip()
                if href and href.removeprefix("mailto:") != label and href != label:
                    out.append(f" ({href})")
            elif kind == "image":
                alt = (tok.content or "").strip()
                out.append(f"[Image: {alt}]" if alt else "[Image]")
            elif kind == "footnote_ref":
                out.append(f"[{int(tok.meta['id']) + 1}]")
        return "".join(out)

    def prefix(self) -> tuple[str, str]:
        """(first-line indent, following-lines indent) for the current nesting."""
        quote = "> " * self.quote
        depth = "".join(" " * (2 if n[0] < 0 else 3) for n in self.lists[:-1])
        if self.lists:
            hang = quote + depth + " " * (2 if self.lists[-1][0] < 0 else 3)
            if self.marker is not None:
                first = quote + depth + self.marker + " "
                self.marker = None
                return first, hang
            return hang, hang
        return quote, quote

    def add(self, text: str, tight: bool = False, wrapped: bool = True) -> None:
        first, rest = self.prefix()
        if wrapped:
            body = wrap(text, indent=rest, first=first)
        else:
            body = "\n".join(first + line if i == 0 else rest + line
                             for i, line in enumerate(text.split("\n")))
        self.blocks.append((body.rstrip(), tight))

    def text(self) -> str:
        out = ""
        for body, tight in self.blocks:
            if out:
                out += "\n" if tight else "\n\n"
            out += body
        return out


def body_text(tokens: Sequence[Token], link: Callable[[str], str | None]) -> str:
    """Plain text of a body's block tokens (footnote definitions excluded)."""
    w = _Writer(link)
    i = 0
    row: list[str] = []
    while i < len(tokens):
        tok = tokens[i]
        kind = tok.type
        if kind == "heading_open":
            title = w.inline(tokens[i + 1].children or []).strip()
            underline = {"h1": "=", "h2": "-"}.get(tok.tag)
            w.add(title + ("\n" + underline * min(len(title), WIDTH) if underline else ""),
                  wrapped=underline is None)
            i += 3
            continue
        if kind == "paragraph_open":
            # Items of a tight list follow each other line by line.
            w.add(w.inline(tokens[i + 1].children or []), tight=tok.hidden and not w.first_in_list)
            w.first_in_list = False
            i += 3
            continue
        if kind == "bullet_list_open":
            w.lists.append([-1])
            w.first_in_list = True
        elif kind == "ordered_list_open":
            w.lists.append([int(tok.attrs.get("start", 1) or 1)])
            w.first_in_list = True
        elif kind in ("bullet_list_close", "ordered_list_close"):
            w.lists.pop()
        elif kind == "list_item_open":
            counter = w.lists[-1]
            if counter[0] < 0:
                w.marker = "-"
            else:
                w.marker = f"{counter[0]}."
                counter[0] += 1
        elif kind == "blockquote_open":
            w.quote += 1
        elif kind == "blockquote_close":
            w.quote -= 1
        elif kind in ("fence", "code_block"):
            w.add("\n".join("    " + line for line in tok.content.rstrip("\n").split("\n")),
                  wrapped=False)
        elif kind == "hr":
            w.add("-" * 20, wrapped=False)
        elif kind == "html_block":
            stripped = _strip_html(tok.content)
            if stripped:
                w.add(stripped)
        elif kind == "table_open":
            w.first_row = True
        elif kind == "tr_open":
            row = []
        elif kind == "inline" and tokens[i - 1].type in ("th_open", "td_open"):
            row.append(" ".join(w.inline(tok.children or []).split()))
        elif kind == "tr_close":
            w.add(" | ".join(row), tight=not w.first_row, wrapped=False)
            w.first_row = False
        i += 1
    return w.text().replace("\n\n\n", "\n\n").strip("\n")
