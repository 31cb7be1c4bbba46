"""The plain-text part, written from the article's Markdown tokens.

Scraping the HTML loses structure; the token stream still knows what is a
heading, a list item, a link or a footnote. Links are written ``text (url)``,
footnote markers ``[n]`` matching the numbered sources, and every paragraph
is wrapped at 78 columns without ever breaking a URL: a URL longer than the
line stays whole on a line of its own. Other over-long words, code lines and
table rows are broken or reflowed to fit, since nothing is lost by that.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import nh3
from markdown_it.token import Token

from dispatch.content import markdown as md
from dispatch.values import urls

WIDTH = 78
# Anything that may be a link for a mail client: never cut.
_URLISH = urls.IN_TEXT


def _cut_long_words(line: str, room: int) -> str:
    """Break words longer than ``room`` that are not URLs into ``room``-sized pieces."""
    room = max(room, 20)
    words: list[str] = []
    for word in line.split():
        if len(word) > room and not _URLISH.search(word):
            words.extend(word[i:i + room] for i in range(0, len(word), room))
        else:
            words.append(word)
    return " ".join(words)


def wrap(text: str, width: int = WIDTH, indent: str = "", first: str | None = None) -> str:
    """Wrap one paragraph; words longer than the line are cut, except URLs."""
    lines = text.split("\n")
    out: list[str] = []
    for number, line in enumerate(lines):
        lead = (indent if first is None else first) if number == 0 else indent
        room = width - max(len(lead), len(indent))
        filled = textwrap.fill(_cut_long_words(line, room), width=width, initial_indent=lead,
                               subsequent_indent=indent, break_long_words=False,
                               break_on_hyphens=False)
        out.append(filled or lead.rstrip())
    return "\n".join(out)


def label_url(url: str, label: str, width: int = WIDTH) -> str:
    """``label url`` on one line when it fits, else the URL alone on the next line
    (a URL cut by a line break stops being a link)."""
    one = f"{label} {url}"
    return one if len(one) <= width else f"{label}\n{url}"


def _code_lines(code: str, indent: str, width: int = WIDTH) -> str:
    """Code indented by four; a line too long is continued on the next lines,
    indented two more, cut at spaces where it can be (never inside a URL)."""
    room = width - len(indent) - 4
    out = []
    for line in code.split("\n"):
        if len(line) <= room or _URLISH.search(line):
            out.append("    " + line)
            continue
        pieces = textwrap.wrap(line, width=room, subsequent_indent="  ",
                               break_long_words=True, break_on_hyphens=False,
                               drop_whitespace=True, replace_whitespace=False)
        out.extend("    " + p for p in pieces)
    return "\n".join(out)


def _table_text(rows: list[list[str]], room: int) -> list[str]:
    """Rows as ``a | b | c``; a table too wide for that becomes one block per
    row with ``Header: value`` lines, which wrap like any paragraph."""
    lines = [" | ".join(row) for row in rows]
    if all(len(line) <= room for line in lines) or len(rows) < 2:
        return lines
    header, *body = rows
    blocks = []
    for row in body:
        fields = []
        for number, cell in enumerate(row):
            name = header[number] if number < len(header) and header[number] else ""
            label = f"{name}: " if name else ""
            fields.append(wrap(cell, width=room, first=label, indent="  "))
        blocks.append("\n".join(fields))
    return blocks


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
    table: list[list[str]] = field(default_factory=list)

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

    def hang(self) -> str:
        """The following-lines indent, without using up a list marker."""
        marker = self.marker
        hang = self.prefix()[1]
        self.marker = marker
        return hang

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
            w.add(_code_lines(tok.content.rstrip("\n"), w.hang()), wrapped=False)
        elif kind == "hr":
            w.add("-" * 20, wrapped=False)
        elif kind == "html_block":
            stripped = _strip_html(tok.content)
            if stripped:
                w.add(stripped)
        elif kind == "table_open":
            w.table = []
        elif kind == "tr_open":
            row = []
            w.table.append(row)
        elif kind == "inline" and tokens[i - 1].type in ("th_open", "td_open"):
            row.append(" ".join(w.inline(tok.children or []).split()))
        elif kind == "table_close":
            room = WIDTH - len(w.hang())
            lines = _table_text(w.table, room)
            tight = lines == [" | ".join(r) for r in w.table]
            for number, line in enumerate(lines):
                w.add(line, tight=tight and number > 0, wrapped=False)
        i += 1
    return w.text().replace("\n\n\n", "\n\n").strip("\n")
