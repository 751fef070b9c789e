"""Shows a run's progress by editing one message, throttled, and only if it takes a while.

A command's output shows as a growing code block after "working… N s". A model's
streamed answer shows as what it is (Markdown, rendered), the first text at once and
then at the edit pace (about once a second per chat, Telegram's flood limit); the
result replaces it when the run ends, and only the result is stored.

Where the transport prints pieces (the console, `bot.types.Streams`) a streamed answer is
printed as it comes instead, each new piece once. Scrubbed first, and only whole words: a
secret's value is never printed in part before it is complete (the word being written
waits for the space or line after it); the rest comes with the result.
"""

from __future__ import annotations

import asyncio
import logging
import time

from bot import markdown
from bot.delivery.postman import Postman
from bot.text import Rich, bold, pre, rich
from bot.types import MessageRef, Outgoing, Sent, Streams

log = logging.getLogger(__name__)

SHOW_AFTER_SECONDS = 0.5  # a fast answer needs no "working…" message before it
EDIT_INTERVAL_SECONDS = 1.0  # about one edit a second per chat (Telegram's pace)
TAIL_CHARS = 3000  # progress shows the tail of long output; the result shows it all
TYPING_LASTS_SECONDS = 4.0  # Telegram shows "typing…" for about five seconds
FIRST_TEXT_SECONDS = 0.2  # a streamed answer's first text waits this long (see `stream`)


class Progress:
    def __init__(self, *, postman: Postman, chat: str, thread: str | None, agent: str) -> None:
        self._postman = postman
        self._chat = chat
        self._thread = thread
        self._agent = agent
        self._ref: MessageRef | None = None
        self._latest = ""
        self._shown = ""
        self._last_edit = 0.0
        self._shown_stream = False  # a streamed text was shown (not just "working…")
        self._typed_at = -TYPING_LASTS_SECONDS
        self._started = time.monotonic()
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._streaming = False  # a model's answer, not a command's output
        self._soon: asyncio.Task[None] | None = None  # the first show of a streamed answer
        self._printed: str | None = None  # of an answer printed piece by piece (scrubbed)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def begin(self) -> None:
        """Start the clock: after a short while, say that the agent is working."""
        self._flusher = asyncio.create_task(self._show_later(), name=f"progress:{self._chat}")

    async def progress(self, output: str) -> None:
        self._latest = output

    async def stream(self, text: str) -> None:
        """A model's answer so far; its first text shows `FIRST_TEXT_SECONDS` after it came
        (an answer complete by then goes out as one message, never as a stream)."""
        first = not self._streaming
        self._streaming = True
        self._latest = text
        printer = self._postman.streams(self._chat)
        if printer is not None:
            self._print_words(printer, text)
            return
        if first and self._ref is None:
            self._soon = asyncio.create_task(self._show_soon(), name=f"stream:{self._chat}")

    def _print_words(self, printer: Streams, text: str) -> None:
        """Print the new whole words of the answer (scrubbed); stop when a scrub changed
        what is printed already (the result is printed whole at the end then)."""
        printed = self._printed or ""
        safe = self._postman.redact(text)
        if not safe.startswith(printed):
            self._printed = None if not printed else printed + "\0"  # never a prefix again
            return
        upto = max(safe.rfind(" "), safe.rfind("\n")) + 1
        if upto <= len(printed):
            return
        lead = "" if self._printed is not None else f"{self._agent}: "
        printer.stream_piece(self._chat, lead + safe[len(printed) : upto])
        self._printed = safe[:upto]

    async def _show_soon(self) -> None:
        await asyncio.sleep(FIRST_TEXT_SECONDS)
        await self._show()

    async def _show_later(self) -> None:
        await asyncio.sleep(SHOW_AFTER_SECONDS)
        while True:
            await self._show()
            await asyncio.sleep(EDIT_INTERVAL_SECONDS)

    async def _show(self) -> None:
        if self._streaming and self._postman.streams(self._chat) is not None:
            return  # the answer is printed piece by piece (`_print_words`)
        if not self._latest.strip() and self._postman.has_typing(self._chat):
            await self._typing()  # the platform's own "typing…" says enough until output comes
            return
        if self._ref is not None and self._latest == self._shown:
            return
        if self._streaming and self._ref is not None and self._since_edit() < EDIT_INTERVAL_SECONDS:
            return  # one edit a second per chat at most: the next tick shows it
        # Scrub before cutting: a cut through a secret's value would leave its tail unscrubbed.
        body = self._postman.redact(self._latest)[-TAIL_CHARS:]
        if self._streaming:
            text = rich(bold(self._agent), ": ", *markdown.to_rich(body), " …")
        else:
            shown = pre(body) if body.strip() else ""
            text = rich(bold(self._agent), f" working… {self.elapsed:.0f} s", shown)
        await self._post(Outgoing(chat=self._chat, thread=self._thread, text=text))
        self._shown = self._latest
        self._shown_stream = self._shown_stream or self._streaming
        await self._typing()

    async def _typing(self) -> None:
        if time.monotonic() - self._typed_at < TYPING_LASTS_SECONDS:
            return
        self._typed_at = time.monotonic()
        try:
            await self._postman.typing(self._chat)
        except Exception:
            log.debug("typing indicator failed", exc_info=True)

    def _since_edit(self) -> float:
        return time.monotonic() - self._last_edit

    async def _post(self, message: Outgoing) -> None:
        async with self._lock:
            self._last_edit = time.monotonic()
            try:
                if self._ref is None:  # progress is not kept in the outbox: it is soon stale
                    self._ref = await self._postman.deliver(message)
                else:
                    self._ref = await self._postman.edit(self._ref, message)
            except Exception:
                log.warning("could not show progress in %s", self._chat, exc_info=True)

    async def finish(self, text: Rich, *, key: str | None = None, answer: str = "") -> Sent:
        """Replace the progress message with the result (or send the result); where it is.

        The result is kept in the outbox until delivered: when the progress message
        cannot be edited, the result is sent as a new message. `key`: its outbox key.
        `answer`: the answer as stored, whose printed part is not printed again.
        """
        for task in (self._flusher, self._soon):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if (printed := self._printed) is not None:
            printer = self._postman.streams(self._chat)
            safe = self._postman.redact(answer)
            if printer is not None and safe.startswith(printed):
                printer.stream_piece(self._chat, safe[len(printed) :])
                printer.end_stream(self._chat)
                return MessageRef(chat=self._chat, message_id="")
            if printer is not None:
                printer.end_stream(self._chat)  # the answer changed: the result, whole
        message = Outgoing(chat=self._chat, thread=self._thread, text=text, key=key)
        # The edit pace holds for the last one too, after a streamed text; after "working…"
        # alone (Slack has no typing indicator: a 1 s answer follows it 0.5 s later) the
        # result replaces it at once, as a command's result does.
        if self._shown_stream and self._ref is not None:
            await asyncio.sleep(max(EDIT_INTERVAL_SECONDS - self._since_edit(), 0.0))
        async with self._lock:
            if self._ref is not None:
                try:
                    return await self._postman.edit(self._ref, message)
                except Exception:
                    log.warning("could not edit the progress in %s; sending the result", self._chat)
            return await self._postman.send(message)
