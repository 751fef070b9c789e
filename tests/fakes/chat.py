"""A chat transport for in-process tests: say things as a user, read what the bot sent.

It implements the same `Transport` protocol as Telegram, Slack and the console; the
transport-specific suites test those against their fake platform servers.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.text import plain_text
from bot.types import Incoming, MessageRef, OnOutage, Outgoing, Press, Routes, Sender

WAIT_SECONDS = 20.0


@dataclass
class Posted:
    ref: MessageRef
    message: Outgoing
    edits: int = 0

    @property
    def text(self) -> str:
        return plain_text(self.message.text)


class ChatRecorder:
    name = "test"
    durable = True
    has_typing = False

    def __init__(self) -> None:
        self.posted: list[Posted] = []
        self.press_answers: list[tuple[str, bool]] = []
        self.deleted: list[MessageRef] = []
        self._handle: Callable[[Incoming], Awaitable[None]] | None = None
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()

    async def start(
        self,
        handle: Callable[[Incoming], Awaitable[None]],
        *,
        on_outage: OnOutage,
        postman: Sender | None = None,
        routes: Routes | None = None,
    ) -> None:
        self._handle = handle

    async def stop(self) -> None:
        self._handle = None

    async def say(
        self,
        text: str,
        *,
        user: str = "test:admin",
        chat: str = "test:chat",
        private: bool = True,
        message_id: str | None = None,
    ) -> None:
        assert self._handle is not None, "the deck is not started"
        incoming = Incoming(
            transport=self.name,
            chat=chat,
            user=user,
            text=text,
            private=private,
            message_id=message_id,
        )
        await self._handle(incoming)

    async def press(
        self,
        value: str,
        *,
        user: str = "test:admin",
        chat: str = "test:chat",
        action_id: str = "approval",
    ) -> None:
        assert self._handle is not None
        press = Press(action_id, value)
        await self._handle(Incoming(transport=self.name, chat=chat, user=user, press=press))

    def share_platform_with(self, other: ChatRecorder) -> None:
        """Post to and edit the same chats as `other` (two decks on one platform): one
        list of messages, one sequence of message ids."""
        self.posted, self._changed, self._ids = other.posted, other._changed, other._ids

    async def send(self, message: Outgoing) -> MessageRef:
        ref = MessageRef(chat=message.chat, message_id=str(next(self._ids)), thread=message.thread)
        async with self._changed:
            self.posted.append(Posted(ref, message))
            self._changed.notify_all()
        return ref

    async def edit(self, ref: MessageRef, message: Outgoing) -> MessageRef:
        async with self._changed:
            for posted in self.posted:
                if posted.ref.message_id == ref.message_id:
                    posted.message = message
                    posted.edits += 1
            self._changed.notify_all()
        return ref

    async def typing(self, chat: str) -> None:
        return None

    async def delete(self, ref: MessageRef) -> None:
        self.deleted.append(ref)
        self.posted = [p for p in self.posted if p.ref.message_id != ref.message_id]

    async def answer_press(self, press: Incoming, text: str, *, alert: bool) -> None:
        self.press_answers.append((text, alert))

    def texts(self, chat: str | None = None) -> list[str]:
        return [p.text for p in self.posted if chat is None or p.message.chat == chat]

    async def wait_for(self, needle: str, *, chat: str | None = None) -> Posted:
        """Wait until a message (sent or edited) contains `needle`; fail after a while."""
        async with asyncio.timeout(WAIT_SECONDS), self._changed:
            while True:
                for posted in self.posted:
                    if needle in posted.text and (chat is None or posted.message.chat == chat):
                        return posted
                await self._changed.wait()
