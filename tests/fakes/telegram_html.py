"""Telegram's HTML parse mode, checked the way the Bot API does it (strictly).

`parse_html` returns the text with tags removed and entities decoded, or raises
`EntityError` with Telegram's wording ("can't parse entities: ...").
"""

from __future__ import annotations

import html
import re

ALLOWED_TAGS = frozenset(
    {
        "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler",
        "a", "code", "pre", "blockquote", "tg-emoji",
    }
)  # fmt: skip
_TOKEN = re.compile(
    r"<(?P<close>/?)(?P<tag>[a-zA-Z][\w-]*)(?P<attrs>[^<>]*)>"
    r"|(?P<entity>&(?:#\d+|#x[0-9a-fA-F]+|lt|gt|amp|quot);)"
    r"|(?P<bare>[<>&])"
)


class EntityError(ValueError):
    pass


def parse_html(text: str) -> str:
    """The visible text of an HTML-formatted message; raise on what Telegram rejects."""
    out: list[str] = []
    open_tags: list[str] = []
    at = 0
    for match in _TOKEN.finditer(text):
        out.append(text[at : match.start()])
        at = match.end()
        offset = len(text[: match.start()].encode())
        if match["bare"]:
            raise EntityError(
                f"can't parse entities: Unsupported start tag or character "
                f'"{match["bare"]}" at byte offset {offset}'
            )
        if match["entity"]:
            out.append(html.unescape(match["entity"]))
            continue
        tag = match["tag"].lower()
        if tag not in ALLOWED_TAGS:
            raise EntityError(
                f'can\'t parse entities: Unsupported start tag "{tag}" at byte offset {offset}'
            )
        if not match["close"]:
            open_tags.append(tag)
        elif not open_tags or open_tags.pop() != tag:
            raise EntityError(
                f'can\'t parse entities: Unexpected end tag "{tag}" at byte offset {offset}'
            )
    if open_tags:
        raise EntityError(
            f"can't parse entities: Can't find end tag corresponding to start tag \"{open_tags[-1]}\""
        )
    out.append(text[at:])
    return "".join(out)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2
