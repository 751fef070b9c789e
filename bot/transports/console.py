"""The console transport: chat in the terminal, or a script of lines on stdin.

Buttons show as numbered choices. A line that is just a number or a button's label
answers the newest open prompt; when stdin is not a terminal such a line waits for a
prompt to appear, so `/ask shell echo hi` followed by `1` approves it in a script.
At a terminal, lines are typed at a prompt with editing and history (`terminal`).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bot.commands import Commands, command_table
from bot.text import Rich, Style
from bot.transports.terminal import Terminal
from bot.types import Button, Incoming, MessageRef, OnOutage, Outgoing, Press, Routes, Sender

CHAT = "console:local"
PROMPT_WAIT_SECONDS = 60.0
_CHOICE = re.compile(r"^\d{1,2}$")
_QUOTED_BREAK = re.compile(r"\n(?=[\s\S])")


@dataclass(slots=True)
class _Prompt:
    ref: MessageRef
    buttons: tuple[Button, ...]


def render(text: Rich) -> str:
    """Rich text as terminal lines: code blocks indented, quotes behind a bar, links with
    their address; emphasis has no marks (a terminal reads fine without them)."""
    parts: list[str] = []
    line_start = True
    for at, span in enumerate(text):
        following = text[at + 1] if at + 1 < len(text) else None
        if span.style is Style.PRE:
            block = span.text.rstrip("\n")
            lead = "" if line_start else "\n"
            piece = lead + "\n".join("  " + line for line in block.splitlines()) + "\n"
        elif span.style is Style.CODE:
            piece = f"`{span.text}`"
        elif span.style is Style.LINK:  # the address once, after the link's last part
            same = following is not None and following.url == span.url
            piece = span.text if span.text == span.url or same else f"{span.text} <{span.url}>"
        else:  # a break after a code block: that block ended its line already
            piece = span.text[1:] if line_start and span.text.startswith("\n") else span.text
        if span.quote and piece:
            piece = ("│ " if line_start else "") + _QUOTED_BREAK.sub("\n│ ", piece)
        parts.append(piece)
        line_start = piece.endswith("\n") if piece else line_start
    return "".join(parts).rstrip("\n")


class ConsoleTransport:
    name = "console"
    durable = False  # printed at once; nothing to keep in an outbox for a terminal
    has_typing = False

    def __init__(
        self,
        *,
        user: str,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        history: Path | None = None,
        commands: Commands | None = None,
    ) -> None:
        self._user = user
        self._stdin = stdin or sys.stdin
        self._stdout = stdout or sys.stdout
        self.scripted = not (self._stdin.isatty() and self._stdout.isatty())
        self._terminal = (
            None
            if self.scripted
            else Terminal(
                history=history,
                commands=command_table() if commands is None else commands,
                stdout=self._stdout,
            )
        )
        self._ids = itertools.count(1)
        self._prompts: list[_Prompt] = []
        self._labels = {"approve", "deny"}
        self._prompt_posted = asyncio.Event()
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self.finished = asyncio.Event()  # set at end of input
        self._open_line = False  # a streamed answer's last line is not ended yet

    async def start(
        self,
        handle: Callable[[Incoming], Awaitable[None]],
        *,
        on_outage: OnOutage,
        postman: Sender | None = None,
        routes: Routes | None = None,
    ) -> None:
        """Read stdin lines as messages; a terminal is never lost, so `on_outage` is unused,
        posts nothing of its own accord (`postman`) and serves no web routes."""
        loop = asyncio.get_running_loop()
        # A daemon thread reads stdin: a blocked read must never hold up the loop or exit.
        threading.Thread(
            target=self._read_stdin, args=(loop,), daemon=True, name="console-stdin"
        ).start()
        self._reader = asyncio.create_task(self._feed(handle), name="console-reader")
        if not self.scripted:
            self._print("agentdeck console — /help lists commands, Ctrl-D quits.")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)

    def _read_stdin(self, loop: asyncio.AbstractEventLoop) -> None:
        lines = self._stdin if self._terminal is None else self._terminal.lines()
        for line in lines:
            loop.call_soon_threadsafe(self._lines.put_nowait, line.rstrip("\r\n"))
        loop.call_soon_threadsafe(self._lines.put_nowait, None)

    async def _feed(self, handle: Callable[[Incoming], Awaitable[None]]) -> None:
        while (line := await self._lines.get()) is not None:
            incoming = await self._to_incoming(line.strip())
            if incoming is not None:
                await handle(incoming)
        self.finished.set()

    async def _to_incoming(self, line: str) -> Incoming | None:
        if not line:
            return None
        if self._looks_like_choice(line) and self.scripted and not self._prompts:
            await self._wait_for_prompt()
        press = self._choose(line)
        if press is not None:
            return Incoming(transport=self.name, chat=CHAT, user=self._user, press=press)
        return Incoming(transport=self.name, chat=CHAT, user=self._user, text=line)

    def _looks_like_choice(self, line: str) -> bool:
        return bool(_CHOICE.match(line)) or line.lower() in self._labels

    async def _wait_for_prompt(self) -> None:
        self._prompt_posted.clear()
        try:
            async with asyncio.timeout(PROMPT_WAIT_SECONDS):
                await self._prompt_posted.wait()
        except TimeoutError:
            return

    def _choose(self, line: str) -> Press | None:
        if not self._prompts:
            return None
        prompt = self._prompts[-1]
        for number, button in enumerate(prompt.buttons, 1):
            if line == str(number) or line.lower() == button.label.lower():
                self._prompts.pop()
                return Press(button.action_id, button.value)
        return None

    async def send(self, message: Outgoing) -> MessageRef:
        ref = MessageRef(chat=message.chat, message_id=str(next(self._ids)))
        self._print(render(message.text))
        for path in message.files:  # the file stays where it is: the terminal shows where
            self._print(f"📎 {path}")
        self._offer(ref, message.buttons)
        return ref

    async def edit(self, ref: MessageRef, message: Outgoing) -> MessageRef:
        self._prompts = [p for p in self._prompts if p.ref.message_id != ref.message_id]
        self._print(render(message.text))
        self._offer(ref, message.buttons)
        return ref

    def _offer(self, ref: MessageRef, buttons: tuple[Button, ...]) -> None:
        if not buttons:
            return
        self._prompts.append(_Prompt(ref, buttons))
        self._labels.update(button.label.lower() for button in buttons)
        self._print("  ".join(f"[{n}] {b.label}" for n, b in enumerate(buttons, 1)))
        self._prompt_posted.set()

    async def typing(self, chat: str) -> None:
        return None

    async def delete(self, ref: MessageRef) -> None:
        return None

    async def answer_press(self, press: Incoming, text: str, *, alert: bool) -> None:
        if alert:
            self._print(text)

    def stream_piece(self, chat: str, piece: str) -> None:
        """Print the next piece of a streamed answer where the last one stopped."""
        if not piece:
            return
        if self._terminal is not None:
            self._terminal.stream(piece)
            return
        self._stdout.write(piece)
        self._stdout.flush()
        self._open_line = not piece.endswith("\n")

    def end_stream(self, chat: str) -> None:
        if self._terminal is not None:
            self._terminal.end_stream()
            return
        if self._open_line:
            self._stdout.write("\n")
            self._stdout.flush()
        self._open_line = False

    def _print(self, text: str) -> None:
        if self._terminal is not None:
            self._terminal.show(text)
            return
        if self._open_line:  # a message in the middle of an answer: on a line of its own
            text = "\n" + text
            self._open_line = False
        self._stdout.write(text + "\n")
        self._stdout.flush()
