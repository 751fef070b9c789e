"""Neutral rich text -> Slack mrkdwn in section blocks; buttons -> a Block Kit actions block.

Slack's mrkdwn has only three characters to escape (`& < >`); escaping them keeps
user and agent text from turning into links or `<!channel>` pings. Formatting marks
(`*`, `` ` ``) are only written around spans that can hold them; a span that cannot
is shown plain. Sections hold at most 3,000 characters and a message 50 blocks; a
text that needs more goes as a file, with its start shown in the message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Any

from bot.text import Rich, Span, Style, split_rich
from bot.types import Button, ButtonStyle, Outgoing, Press

SECTION_CHARS = 3000
MAX_BLOCKS = 50
FALLBACK_CHARS = 300  # the notification text shown next to blocks
BUTTON_LABEL_CHARS = 75
BUTTON_VALUE_CHARS = 2000
ACTIONS_BLOCK_ID = "deck-buttons"

Block = dict[str, Any]

# `slack:U024BE7LH` in our texts becomes a mention: approvers read names, not ids.
_USER_ID = re.compile(r"\bslack:([UW][A-Z0-9]{2,})\b")
_URL_UNSAFE = {"|": "%7C", "<": "%3C", ">": "%3E", " ": "%20"}
_MARKS = {Style.BOLD: "*", Style.ITALIC: "_", Style.STRIKE: "~"}
_QUOTED_BREAK = re.compile(r"\n(?=[\s\S])")
# `/pause` as a word of its own (not `/etc/pause`, not `a/pause`, not `/pause/x`).
_COMMAND = re.compile(r"(?<![\w/.])/([a-z][a-z0-9_]*)(?![\w/])")
# Where a command can be named (not code blocks, not links).
_WORDS = (Style.PLAIN, Style.BOLD, Style.ITALIC, Style.STRIKE, Style.CODE)


@dataclass(frozen=True, slots=True)
class Rendered:
    """A message as the Web API takes it."""

    text: str  # the notification text (escaped mrkdwn)
    blocks: tuple[Block, ...]
    attachment: str | None = None  # the full text, when it is uploaded as a file


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn(span: Span) -> str:
    """One span as mrkdwn (a code block without the line breaks around it)."""
    if span.style is Style.CODE:
        return _code(span.text)
    if span.style is Style.PRE:
        return _pre(span.text)
    marks = "".join(_MARKS[style] for style in span.emphasis)
    if span.style is Style.LINK and span.url:
        url = _url(span.url)
        return _marked(span.text, marks, lambda text: f"<{url}|{escape(text)}>")
    return _marked(span.text, marks, _with_mentions)


def render(text: Rich) -> str:
    return _join(text, mrkdwn).strip("\n")


def plain(text: Rich) -> str:
    """The text without marks, code blocks on lines of their own (for a file)."""
    return _join(text, _plain_span)


def _plain_span(span: Span) -> str:
    return span.text.strip("\n") if span.style is Style.PRE else span.text


def _join(text: Rich, show: Callable[[Span], str]) -> str:
    parts: list[str] = []
    line_start = True
    after_block = False
    for span in text:
        piece = show(span)
        if span.style is Style.PRE and piece:
            lead = "" if line_start else "\n"
            piece = f"{lead}{piece}\n"
        elif after_block and piece.startswith("\n"):  # the block ended its line already
            piece = piece[1:]
        after_block = span.style is Style.PRE and bool(piece)
        if span.quote and piece:  # `>` starts each quoted line (unescaped: it is the mark)
            piece = ("> " if line_start else "") + _QUOTED_BREAK.sub("\n> ", piece)
        parts.append(piece)
        line_start = piece.endswith("\n") if piece else line_start
    return "".join(parts)


def sections(text: Rich, limit: int = SECTION_CHARS) -> list[str]:
    """Cut rendered text into section-sized pieces at paragraph or line boundaries."""
    out: list[str] = []
    for chunk in split_rich(text, limit, _measure):
        rendered = render(chunk)
        if len(rendered) > SECTION_CHARS:  # escaping grew it past the cut: cut finer
            out.extend(sections(chunk, limit // 2))
        elif rendered.strip():
            out.append(rendered)
    return out


def render_message(message: Outgoing) -> Rendered:
    """Blocks for a message; a text too long for one message keeps its start and a file."""
    parts = sections(message.text)
    room = MAX_BLOCKS - (1 if message.buttons else 0)
    attachment = None
    if len(parts) > room:
        attachment = plain(message.text)
        note = f"… {len(attachment):,} characters in all: the full text is in the file below."
        parts = [parts[0], escape(note)]
    blocks: list[Block] = [section(part) for part in parts]
    if message.buttons:
        blocks.append(actions(message.buttons))
    return Rendered(text=fallback(message.text), blocks=tuple(blocks), attachment=attachment)


def chat_command(text: str, slash: str, known: Collection[str]) -> str:
    """Our commands named in `text`, in Slack's form: `/pause 3f2a` -> `/deck pause 3f2a`.

    Slack has one slash command for the app (`slash`, `[slack] command`); the others are
    its first word. Only names in `known` change: paths and other words stay as written.
    """
    return _COMMAND.sub(lambda m: f"{slash} {m[1]}" if m[1] in known else m[0], text)


def in_slack_form(message: Outgoing, slash: str, known: Collection[str]) -> Outgoing:
    """The message with every command it names (hints, usage, /help) in Slack's form."""
    if not any("/" in span.text for span in message.text):
        return message
    text = tuple(
        replace(span, text=chat_command(span.text, slash, known)) if span.style in _WORDS else span
        for span in message.text
    )
    return replace(message, text=text)


def fallback(text: Rich) -> str:
    """The notification text: the words of every part, a code block's on lines of their
    own (so `echo deploy` and the `Expires …` after it stay two words)."""
    plain = " ".join(_join(text, _plain_span).split())
    if len(plain) > FALLBACK_CHARS:
        plain = plain[: FALLBACK_CHARS - 1] + "…"
    return _with_mentions(plain) or "…"


def section(text: str) -> Block:
    # verbatim: no automatic linking of channel names or `@here` in agent output.
    return {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}


def actions(buttons: tuple[Button, ...]) -> Block:
    """Buttons in one actions block; action ids must be unique there, so they get `#n`."""
    return {
        "type": "actions",
        "block_id": ACTIONS_BLOCK_ID,
        "elements": [_button(button, n) for n, button in enumerate(buttons)],
    }


def press_of(action_id: str, value: str) -> Press:
    """Our press back from a Block Kit action (`approval#0` -> `approval`)."""
    return Press(action_id.partition("#")[0], value)


def _button(button: Button, n: int) -> Block:
    assert len(button.value) <= BUTTON_VALUE_CHARS, "a Block Kit button value holds 2,000 chars"
    element: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": button.label[:BUTTON_LABEL_CHARS]},
        "action_id": f"{button.action_id}#{n}",
        "value": button.value,
    }
    if button.style is not ButtonStyle.DEFAULT:
        element["style"] = button.style.value
    return element


def _measure(span: Span) -> int:
    quote = 2 * (span.text.count("\n") + 1) if span.quote else 0
    return len(mrkdwn(span)) + (2 if span.style is Style.PRE else 0) + quote


def _marked(text: str, marks: str, show: Callable[[str], str]) -> str:
    """Each line's words between the marks (`*`, `_`, `~`); a line that holds one of the
    marks itself is shown plain, since the marks would end early."""
    if not marks:
        return show(text)
    lines: list[str] = []
    for line in text.split("\n"):
        core = line.strip()
        if not core or any(mark in core for mark in marks):
            lines.append(show(line))
            continue
        lead = line[: len(line) - len(line.lstrip())]
        trail = line[len(line.rstrip()) :]
        lines.append(f"{lead}{marks}{show(core)}{marks[::-1]}{trail}")
    return "\n".join(lines)


def _with_mentions(text: str) -> str:
    return _USER_ID.sub(r"<@\1>", escape(text))


def _code(text: str) -> str:
    if not text.strip() or "`" in text or "\n" in text:
        return escape(text)
    return f"`{escape(text)}`"


def _pre(text: str) -> str:
    body = text.strip("\n")
    if not body.strip():
        return ""
    # A ``` inside would close the block early; a zero-width space keeps it literal.
    return "```" + escape(body).replace("```", "`\u200b``") + "```"


def _url(url: str) -> str:
    url = url.replace("&", "&amp;")
    for char, code in _URL_UNSAFE.items():
        url = url.replace(char, code)
    return url
