"""Neutral rich text: a tuple of spans that each transport renders its own way.

Text is built from spans, never parsed, so user and agent output can't be mistaken
for markup: an agent printing `<b>` or `*` gets exactly that shown. The one parser is
`bot.markdown`, for agents whose output is Markdown (`markdown = true`): it turns the
Markdown into these spans, so every transport still renders only spans.

A span has one kind (`style`: plain, code, pre, link, or an emphasis) and may carry
further emphasis (`marks`: bold inside a link, bold and italic); `quote` marks a span
inside a block quote, `lang` the language of a code block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import StrEnum


class Style(StrEnum):
    PLAIN = "plain"
    BOLD = "bold"
    CODE = "code"
    PRE = "pre"
    LINK = "link"
    ITALIC = "italic"
    STRIKE = "strike"


EMPHASIS = (Style.BOLD, Style.ITALIC, Style.STRIKE)  # the order renderers nest them in


@dataclass(frozen=True, slots=True)
class Span:
    text: str
    style: Style = Style.PLAIN
    url: str = ""
    marks: frozenset[Style] = frozenset()  # further emphasis (only EMPHASIS members)
    quote: bool = False
    lang: str = ""  # a code block's language (`pre` only)

    @property
    def emphasis(self) -> tuple[Style, ...]:
        """Bold, italic, strike as they apply, in `EMPHASIS` order; none on code."""
        if self.style in (Style.CODE, Style.PRE):
            return ()
        return tuple(s for s in EMPHASIS if s is self.style or s in self.marks)


def span_to_json(span: Span) -> list[object]:
    """A span as stored (the outbox): `[text, style, url]`, and its extras when it has any."""
    extra: dict[str, object] = {}
    if span.marks:
        extra["marks"] = sorted(mark.value for mark in span.marks)
    if span.quote:
        extra["quote"] = True
    if span.lang:
        extra["lang"] = span.lang
    return (
        [span.text, span.style.value, span.url, extra]
        if extra
        else [span.text, span.style.value, span.url]
    )


def span_from_json(stored: list[object]) -> Span:
    """The span `span_to_json` stored (rows written before the extras have three items)."""
    text, style, url, *rest = stored
    extra = rest[0] if rest and isinstance(rest[0], dict) else {}
    marks = frozenset(Style(str(mark)) for mark in extra.get("marks", ()))
    return Span(
        str(text),
        Style(str(style)),
        str(url),
        marks & set(EMPHASIS),
        quote=bool(extra.get("quote", False)),
        lang=str(extra.get("lang", "")),
    )


Piece = Span | str
Rich = tuple[Span, ...]


def rich(*pieces: Piece) -> Rich:
    """Join plain strings and spans into rich text."""
    return tuple(p if isinstance(p, Span) else Span(p) for p in pieces if p)


def bold(text: str) -> Span:
    return Span(text, Style.BOLD)


def code(text: str) -> Span:
    return Span(text, Style.CODE)


def pre(text: str) -> Span:
    return Span(text, Style.PRE)


def link(text: str, url: str) -> Span:
    return Span(text, Style.LINK, url)


def italic(text: str) -> Span:
    return Span(text, Style.ITALIC)


def plain_text(text: Rich) -> str:
    return "".join(span.text for span in text)


def split_rich(text: Rich, limit: int, measure: Callable[[Span], int]) -> list[Rich]:
    """Cut rich text into chunks whose rendered size stays under `limit`.

    Cuts fall at paragraph, then line boundaries; a code block that must be cut is
    closed and reopened, never broken inside its markup.
    """
    chunks: list[list[Span]] = [[]]
    used = 0
    for span in _pieces(text, limit, measure):
        size = measure(span)
        if used + size > limit and chunks[-1]:
            chunks.append([])
            used = 0
        chunks[-1].append(span)
        used += size
    return [tuple(chunk) for chunk in chunks if chunk]


def _pieces(text: Iterable[Span], limit: int, measure: Callable[[Span], int]) -> Iterable[Span]:
    """Yield spans no bigger than `limit`, cutting the big ones at good boundaries."""
    for span in text:
        yield from _fit(span, limit, measure)


def _fit(span: Span, limit: int, measure: Callable[[Span], int]) -> Iterable[Span]:
    size = measure(span)
    if size <= limit or len(span.text) <= 1:
        yield span
        return
    overhead = measure(replace(span, text=""))
    # Rendering can grow the text (escaping `<` to `&lt;`): cut in raw characters scaled
    # by that growth, and cut again any part that still renders too big.
    budget = max((limit - overhead) * len(span.text) // max(size - overhead, 1), 1)
    for part in _cut(span.text, budget):
        yield from _fit(replace(span, text=part), limit, measure)


def _cut(text: str, budget: int) -> Iterable[str]:
    """Cut at the last blank line, else newline, else space, within each budget."""
    while len(text) > budget:
        window = text[:budget]
        at = max(window.rfind("\n\n"), 0) or max(window.rfind("\n"), 0) or max(window.rfind(" "), 0)
        at = at + 1 if at > 0 else budget
        yield text[:at]
        text = text[at:]
    if text:
        yield text
