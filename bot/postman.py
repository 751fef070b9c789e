"""Delivers neutral messages to the transport that owns the chat."""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.errors import TransportError
from bot.text import Rich, Span
from bot.types import Incoming, MessageRef, Outgoing, Transport

log = logging.getLogger(__name__)


class Postman:
    def __init__(self, redact: Callable[[str], str] = lambda s: s) -> None:
        self._transports: dict[str, Transport] = {}
        self._redact = redact

    def add(self, transport: Transport) -> None:
        self._transports[transport.name] = transport

    def transport_for(self, chat: str) -> Transport:
        name = chat.partition(":")[0]
        transport = self._transports.get(name)
        if transport is None:
            raise TransportError(f"No transport {name!r} is running for chat {chat}")
        return transport

    def redact(self, text: str) -> str:
        """Scrub stored secrets' values, as every message sent through here is."""
        return self._redact(text)

    def names(self) -> list[str]:
        """The transports messages can go to (chat id prefixes)."""
        return list(self._transports)

    def knows(self, chat: str) -> bool:
        return chat.partition(":")[0] in self._transports

    async def send(self, message: Outgoing) -> MessageRef:
        return await self.transport_for(message.chat).send(self.scrub(message))

    async def edit(self, ref: MessageRef, message: Outgoing) -> MessageRef:
        return await self.transport_for(ref.chat).edit(ref, self.scrub(message))

    def has_typing(self, chat: str) -> bool:
        """Whether the chat's platform shows a "typing…" indicator of its own."""
        return bool(getattr(self.transport_for(chat), "has_typing", False))

    async def typing(self, chat: str) -> None:
        await self.transport_for(chat).typing(chat)

    async def delete(self, ref: MessageRef) -> None:
        await self.transport_for(ref.chat).delete(ref)

    async def answer_press(self, press: Incoming, text: str, *, alert: bool) -> None:
        await self.transport_for(press.chat).answer_press(press, self._redact(text), alert=alert)

    def scrub(self, message: Outgoing) -> Outgoing:
        """The message with stored secrets' values scrubbed (before it is stored or sent)."""
        text: Rich = tuple(Span(self._redact(s.text), s.style, s.url) for s in message.text)
        return Outgoing(
            chat=message.chat, text=text, thread=message.thread, buttons=message.buttons
        )
