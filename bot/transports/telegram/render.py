"""Neutral rich text and buttons -> what the Bot API takes: HTML parse mode, inline keyboards.

Text is escaped span by span, so nothing an agent prints can become markup. Long text
is split with `bot.text.split_rich` under Telegram's 4096-unit limit, measured on the
rendered HTML in UTF-16 code units (how Telegram counts), so every chunk fits even
before Telegram strips the tags; a `<pre>` block that must be cut is closed and
reopened, never broken.
"""

from __future__ import annotations

from html import escape

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.text import Rich, Span, Style, plain_text, split_rich
from bot.types import Button

MESSAGE_LIMIT = 4096
CALLBACK_DATA_LIMIT = 64  # bytes, Telegram's limit for callback_data
CAPTION_CHARS = 200
FILE_CAPTION_CHARS = 1024  # Telegram's limit for a photo's or document's caption
SEPARATOR = "|"  # callback_data = f"{action_id}|{value}"
EMPTY = "(no text)"
SHORT_LABEL = 16

_EMPHASIS_TAGS = {Style.BOLD: "b", Style.ITALIC: "i", Style.STRIKE: "s"}
QUOTE_OPEN, QUOTE_CLOSE = "<blockquote>", "</blockquote>"


def span_html(span: Span) -> str:
    """One span as Telegram HTML: escaped, its tags balanced, code never holding tags."""
    body = escape(span.text, quote=False)
    if span.style is Style.PRE:
        if span.lang:
            return f'<pre><code class="language-{escape(span.lang)}">{body}</code></pre>'
        return f"<pre>{body}</pre>"
    if span.style is Style.CODE:
        return f"<code>{body}</code>"
    if span.style is Style.LINK and span.url:
        body = f'<a href="{escape(span.url)}">{body}</a>'
    for style in reversed(span.emphasis):
        tag = _EMPHASIS_TAGS[style]
        body = f"<{tag}>{body}</{tag}>"
    return body


def to_html(text: Rich) -> str:
    """Spans as HTML; neighbouring quoted spans share one `<blockquote>`."""
    parts: list[str] = []
    quoted = False
    for span in text:
        if span.quote != quoted:
            parts.append(QUOTE_OPEN if span.quote else QUOTE_CLOSE)
            quoted = span.quote
        parts.append(span_html(span))
    if quoted:
        parts.append(QUOTE_CLOSE)
    return "".join(parts)


def utf16_len(text: str) -> int:
    """Telegram counts UTF-16 code units: characters outside the BMP count twice."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


def measure(span: Span) -> int:
    quote = len(QUOTE_OPEN) + len(QUOTE_CLOSE) if span.quote else 0
    return utf16_len(span_html(span)) + quote


Page = tuple[str, Rich]  # (the HTML to send, the rich text it came from, for the plain retry)


def pages(text: Rich, limit: int = MESSAGE_LIMIT) -> list[Page]:
    """Rich text as message-sized HTML pages (one, for the usual short answer)."""
    if not plain_text(text).strip():
        text = (Span(EMPTY),)  # Telegram refuses empty messages
    html = to_html(text)
    if utf16_len(html) <= limit:
        return [(html, text)]
    return [(to_html(chunk), chunk) for chunk in split_rich(text, limit, measure)]


def caption(text: Rich) -> str:
    """A short caption for a long text sent as a document: its first line, and a note."""
    first = plain_text(text).strip().split("\n", 1)[0]
    if len(first) > CAPTION_CHARS - 40:
        first = first[: CAPTION_CHARS - 41] + "…"
    return f"{first}\n(full text in the attached file)"


def callback_data(button: Button) -> str:
    data = f"{button.action_id}{SEPARATOR}{button.value}"
    assert len(data.encode()) <= CALLBACK_DATA_LIMIT, f"callback_data too long: {data!r}"
    return data


def parse_callback_data(data: str) -> tuple[str, str]:
    """`"approval|ab12:approve"` -> `("approval", "ab12:approve")`; no separator: no action."""
    action_id, found, value = data.partition(SEPARATOR)
    return (action_id, value) if found else ("", data)


def keyboard(buttons: tuple[Button, ...]) -> InlineKeyboardMarkup | None:
    """Inline buttons, two to a row when the labels are short (a phone screen is narrow)."""
    if not buttons:
        return None
    keys = [InlineKeyboardButton(b.label, callback_data=callback_data(b)) for b in buttons]
    width = 2 if all(len(b.label) <= SHORT_LABEL for b in buttons) else 1
    return InlineKeyboardMarkup([keys[i : i + width] for i in range(0, len(keys), width)])
