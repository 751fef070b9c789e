"""Markdown (what models write) -> the neutral rich text every transport renders.

Models answer in Markdown: `**bold**`, lists, code fences, links. markdown-it-py parses
it (CommonMark with tables and strikethrough; raw HTML stays text), and the tokens
become `bot.text` spans, so each transport keeps rendering only spans with its own
escaping: Telegram HTML, Slack mrkdwn, console text, the dashboard's HTML. Nothing in
the Markdown can produce markup a span cannot hold, so a renderer's output is always
well formed.

What it keeps: bold, italic, strikethrough, inline code, code blocks with their
language, links (http, https and mailto only; any other target leaves the label as
text), block quotes. What degrades to text: headings (bold lines), lists (bullets and
numbers as characters, nested ones indented), rules, images (a link to the image),
tables (a code block of aligned columns).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import TYPE_CHECKING

from bot.text import EMPHASIS, Rich, Span, Style

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

SAFE_SCHEMES = ("http://", "https://", "mailto:")
BULLETS = ("•", "◦", "▪")
INDENT = "   "
RULE = "———"
# One line Markdown gives no meaning to: none of its marks, entities or breaks, and no
# start that opens a block (a list's number, an indent, a heading). A short answer is
# mostly this, and skips the parser: about 3 % of an llm message's loop time.
_PLAIN = re.compile(r"[^\W\d_][^\n\r\t\\`*_\[\]<>&|~]*(?<!\s)")
_LANG = re.compile(r"[A-Za-z0-9_+#.-]{1,32}")
_EMPHASIS_OF = {"strong": Style.BOLD, "em": Style.ITALIC, "s": Style.STRIKE}


@cache
def _parser() -> MarkdownIt:
    """Built at the first text to render: a deck that has not answered yet does not load
    markdown-it (60 modules)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def to_rich(markdown: str) -> Rich:
    """The Markdown as rich text; text without Markdown in it comes back as itself."""
    if _PLAIN.fullmatch(markdown):  # most short answers: the parser would say the same
        return (Span(markdown),)
    builder = _Builder()
    builder.blocks(_parser().parse(markdown))
    return builder.result()


def inline(markdown: str) -> tuple[Span, ...]:
    """The bot's own short texts written in Markdown (a command's help: "with `notes`")
    as spans to put among others: one paragraph, its trailing break dropped."""
    return to_rich(markdown.strip())


def safe_url(url: str) -> str:
    """The URL when its scheme is one a chat may open, else empty."""
    url = url.strip()
    return url if url.lower().startswith(SAFE_SCHEMES) and len(url) <= 2048 else ""


@dataclass
class _List:
    ordered: bool
    number: int


@dataclass
class _Builder:
    spans: list[Span] = field(default_factory=list)
    marks: list[Style] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    lists: list[_List] = field(default_factory=list)
    quotes: int = 0
    breaks: int = 0  # line breaks owed before the next text
    prefix: str = ""  # a list item's bullet, written before its first text

    def result(self) -> Rich:
        return tuple(self.spans)

    # -- blocks ----------------------------------------------------------------------

    def blocks(self, tokens: Sequence[Token]) -> None:
        at = 0
        while at < len(tokens):
            token = tokens[at]
            if token.type == "table_open":
                end = next(i for i in range(at, len(tokens)) if tokens[i].type == "table_close")
                self._table(tokens[at : end + 1])
                at = end + 1
                continue
            self._block(token)
            at += 1

    def _block(self, token: Token) -> None:
        kind = token.type
        if kind == "inline":
            self._inline(token.children or [])
        elif kind == "paragraph_close":
            self._owe(1 if token.hidden else 2)
        elif kind == "heading_open":
            self.marks.append(Style.BOLD)
        elif kind == "heading_close":
            self.marks.pop()
            self._owe(2)
        elif kind in ("bullet_list_open", "ordered_list_open"):
            start = int(token.attrGet("start") or 1) if kind == "ordered_list_open" else 0
            self.lists.append(_List(kind == "ordered_list_open", start))
            self._owe(1)
        elif kind in ("bullet_list_close", "ordered_list_close"):
            self.lists.pop()
            self._owe(1 if self.lists else 2)
        elif kind == "list_item_open":
            self._owe(1)
            self.prefix = self._bullet()
        elif kind == "blockquote_open":
            self._owe(2)
            self.quotes += 1
        elif kind == "blockquote_close":
            self.quotes -= 1
            self._owe(2)
        elif kind in ("fence", "code_block"):
            self._code_block(token)
        elif kind == "hr":
            self._text(RULE, Style.PLAIN)
            self._owe(2)

    def _bullet(self) -> str:
        current = self.lists[-1]
        depth = len(self.lists) - 1
        if current.ordered:
            mark = f"{current.number}."
            current.number += 1
        else:
            mark = BULLETS[depth % len(BULLETS)]
        return f"{INDENT * depth}{mark} "

    def _code_block(self, token: Token) -> None:
        body = token.content.rstrip("\n")
        words = token.info.split()
        lang = words[0] if words and _LANG.fullmatch(words[0]) else ""
        self._flush()
        if body.strip():
            self._add(Span(body, Style.PRE, lang=lang))
        self._owe(2)

    def _table(self, tokens: Sequence[Token]) -> None:
        rows: list[list[str]] = []
        for token in tokens:
            if token.type == "tr_open":
                rows.append([])
            elif token.type == "inline" and rows:
                rows[-1].append(_plain(token.children or []))
        if not rows:
            return
        count = max(len(row) for row in rows)
        widths = [max((len(r[i]) for r in rows if i < len(r)), default=0) for i in range(count)]
        lines = [" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
        if len(lines) > 1:
            lines.insert(1, "-+-".join("-" * width for width in widths))
        self._flush()
        self._add(Span("\n".join(line.rstrip() for line in lines), Style.PRE))
        self._owe(2)

    # -- inline ----------------------------------------------------------------------

    def _inline(self, children: Sequence[Token]) -> None:
        for token in children:
            kind = token.type
            base = kind.removesuffix("_open").removesuffix("_close")
            if base in _EMPHASIS_OF:
                if kind.endswith("_open"):
                    self.marks.append(_EMPHASIS_OF[base])
                else:
                    self.marks.remove(_EMPHASIS_OF[base])
            elif kind == "link_open":
                self.links.append(safe_url(str(token.attrGet("href") or "")))
            elif kind == "link_close":
                self.links.pop()
            elif kind == "text":
                self._text(token.content, Style.PLAIN)
            elif kind == "code_inline":
                self._text(token.content, Style.CODE)
            elif kind in ("softbreak", "hardbreak"):
                self._text("\n", Style.PLAIN)
            elif kind == "image":
                self._image(token)
            else:  # anything else the parser may add: its text, never markup
                self._text(token.content, Style.PLAIN)

    def _image(self, token: Token) -> None:
        label = _plain(token.children or []) or "image"
        url = safe_url(str(token.attrGet("src") or ""))
        self.links.append(url)
        self._text(label, Style.PLAIN)
        self.links.pop()

    def _text(self, text: str, style: Style) -> None:
        if not text:
            return
        self._flush()
        url = self.links[-1] if self.links else ""
        marks = frozenset(self.marks)
        if url:  # a link holds emphasis, not code (Telegram keeps code out of links)
            style = Style.LINK
        elif style is Style.PLAIN and marks:
            style = next(s for s in EMPHASIS if s in marks)
        if style is Style.CODE:
            marks = frozenset()
        self._add(Span(text, style, url, marks - {style}, quote=self.quotes > 0))

    # -- assembling --------------------------------------------------------------------

    def _owe(self, breaks: int) -> None:
        self.breaks = max(self.breaks, breaks)

    def _flush(self) -> None:
        """Write the line breaks and the bullet owed before new text."""
        if self.spans and self.breaks:  # quoted when it falls inside one quote
            quoted = self.quotes > 0 and self.spans[-1].quote
            self._add(Span("\n" * self.breaks, quote=quoted))
        self.breaks = 0
        if self.prefix:
            self._add(Span(self.prefix, quote=self.quotes > 0))
            self.prefix = ""

    def _add(self, span: Span) -> None:
        last = self.spans[-1] if self.spans else None
        if last is not None and replace(last, text="") == replace(span, text=""):
            self.spans[-1] = replace(last, text=last.text + span.text)
        else:
            self.spans.append(span)


def _plain(children: Sequence[Token]) -> str:
    """The text of inline tokens, marks dropped (a table cell, an image's label)."""
    parts: list[str] = []
    for token in children:
        if token.type in ("text", "code_inline"):
            parts.append(token.content)
        elif token.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif token.children:
            parts.append(_plain(token.children))
    return "".join(parts)
