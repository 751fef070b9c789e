"""Delivers neutral messages the durable way: through the outbox where the transport needs it.

`Postman(direct, outbox)`: `send()` records the message in the outbox and keeps it until
delivered (`bot.delivery.outbox`); `keep()` hands a message to the outbox under a key the
caller chooses (notices: stored once per key, delivered in the background). What is not
worth keeping (progress messages, typing, a press's answer) goes the direct way
(`bot.delivery.direct.Direct`), which the postman passes on to. A transport that keeps
nothing (the console) is always sent to directly.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from bot.delivery.direct import NOT_MINTED, Direct, Minter, minted_link
from bot.types import Incoming, MessageRef, Outgoing, Sender, Sent, Streams, Transport

__all__ = ["NOT_MINTED", "Direct", "DurableSend", "Postman", "Sender", "minted_link"]


class DurableSend(Sender, Protocol):
    async def put(self, key: str, message: Outgoing, *, subject: str = "") -> bool: ...


class Postman:
    def __init__(self, direct: Direct, outbox: DurableSend | None = None) -> None:
        self.direct = direct
        self._outbox = outbox  # None: nothing is kept (a postman without storage)

    async def send(self, message: Outgoing, *, retry: bool = True) -> Sent:
        """Send through the outbox (kept until delivered) where the transport needs it.

        `Queued` when it did not go out now (the outbox delivers it later).

        `retry=False`: a message worth sending only now (a slash command's echo); it is
        recorded, but a failed attempt is not tried again later.
        """
        transport = self.direct.transport_for(message.chat)
        if self._outbox is None or not transport.durable:
            return await self.direct.deliver(message)
        return await self._outbox.send(message, retry=retry)

    async def keep(self, key: str, message: Outgoing, *, subject: str = "") -> None:
        """Store the message under `key` (once) for the outbox to deliver and retry.

        Where nothing is kept (no outbox, the console) it is sent now instead.
        """
        transport = self.direct.transport_for(message.chat)
        if self._outbox is None or not transport.durable:
            await self.direct.deliver(message)
            return
        await self._outbox.put(key, message, subject=subject)

    # --- the direct way, passed on ---------------------------------------------------

    def mint(self, kind: str, minter: Minter) -> None:
        self.direct.mint(kind, minter)

    def mints(self, kind: str) -> bool:
        return self.direct.mints(kind)

    def transport_for(self, chat: str) -> Transport:
        return self.direct.transport_for(chat)

    def redact(self, text: str) -> str:
        return self.direct.redact(text)

    def names(self) -> list[str]:
        return self.direct.names()

    def knows(self, chat: str) -> bool:
        return self.direct.knows(chat)

    async def deliver(self, message: Outgoing) -> MessageRef:
        return await self.direct.deliver(message)

    def can_look_up(self, chat: str) -> bool:
        return self.direct.can_look_up(chat)

    async def find_sent(self, message: Outgoing, since: datetime) -> MessageRef | None:
        return await self.direct.find_sent(message, since)

    async def probe(self, name: str) -> None:
        await self.direct.probe(name)

    async def edit(self, ref: MessageRef, message: Outgoing) -> MessageRef:
        return await self.direct.edit(ref, message)

    def has_typing(self, chat: str) -> bool:
        return self.direct.has_typing(chat)

    def streams(self, chat: str) -> Streams | None:
        return self.direct.streams(chat)

    async def typing(self, chat: str) -> None:
        await self.direct.typing(chat)

    async def delete(self, ref: MessageRef) -> None:
        await self.direct.delete(ref)

    async def answer_press(self, press: Incoming, text: str, *, alert: bool) -> None:
        await self.direct.answer_press(press, text, alert=alert)

    def scrub(self, message: Outgoing) -> Outgoing:
        return self.direct.scrub(message)
