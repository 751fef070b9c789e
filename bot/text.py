"""Neutral rich text: a tuple of spans that each transport renders its own way.

Text is built from spans, never parsed, so user and agent output can't be mistaken
for markup: an agent printing `<b>` or `*` gets exactly that shown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum


class Style(StrEnum):
    PLAIN = "plain"
    BOLD = "bold"
    CODE = "code"
    PRE = "pre"
    LINK = "link"


@dataclass(frozen=True, slots=True)
class Span:
    text: str
    style: Style = Style.PLAIN
    url: str = ""


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
    overhead = measure(Span("", span.style, span.url))
    # Rendering can grow the text (escaping `<` to `&lt;`): cut in raw characters scaled
    # by that growth, and cut again any part that still renders too big.
    budget = max((limit - overhead) * len(span.text) // max(size - overhead, 1), 1)
    for part in _cut(span.text, budget):
        yield from _fit(Span(part, span.style, span.url), limit, measure)


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
