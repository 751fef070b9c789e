"""The direct way out: a neutral message handed to the transport that owns its chat.

Nothing is recorded and nothing retried here: `Direct` is what the outbox delivers
through, and what sends messages not worth keeping (progress, typing, a press's answer).
The durable way (`bot.delivery.postman.Postman`) is built on top of it.

It is built from the deck's transports, once: what a transport needs of the deck
(the postman) it is given when it starts, so it can be built first (`bot.graph`).

A link that must not be stored (the dashboard's one-time sign-in link) is sent as a
placeholder (`minted_link`) and made at each delivery attempt by a minter registered
for its kind: the outbox row holds the placeholder only, and a retry brings a new link.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime

from bot.errors import TransportError
from bot.text import Rich, Span, Style
from bot.types import Incoming, LooksUp, MessageRef, Outgoing, Probing, Streams, Transport

MINTED = "agentdeck-mint:"  # the URL scheme of a placeholder: `agentdeck-mint:<kind>:<arg>`
NOT_MINTED = "(this link cannot be made here: ask for it again)"
Minter = Callable[[str, str], str]  # (argument, chat) -> the URL


def minted_link(kind: str, argument: str) -> Span:
    """A link made anew whenever the message is delivered, never stored."""
    return Span("(a link made when sent)", Style.LINK, f"{MINTED}{kind}:{argument}")


class Direct:
    def __init__(
        self, transports: Iterable[Transport], redact: Callable[[str], str] = lambda s: s
    ) -> None:
        self._transports = {transport.name: transport for transport in transports}
        self._redact = redact
        self._minters: dict[str, Minter] = {}

    def mint(self, kind: str, minter: Minter) -> None:
        """Make the links of `minted_link(kind, ...)` placeholders with `minter`."""
        self._minters[kind] = minter

    def mints(self, kind: str) -> bool:
        """Whether links of `kind` can be made in this process (a minter is registered)."""
        return kind in self._minters

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

    async def deliver(self, message: Outgoing) -> MessageRef:
        """Send straight to the transport: nothing is recorded, nothing retried later."""
        return await self.transport_for(message.chat).send(self._ready(message))

    def can_look_up(self, chat: str) -> bool:
        """Whether the chat's platform can say if a message with a given key arrived."""
        return isinstance(self.transport_for(chat), LooksUp)

    async def find_sent(self, message: Outgoing, since: datetime) -> MessageRef | None:
        """The message carrying `message.key`, if the platform has it (`can_look_up`)."""
        transport = self.transport_for(message.chat)
        if not isinstance(transport, LooksUp):
            raise TransportError(f"{message.chat}: the platform cannot look messages up")
        return await transport.find_sent(message, since)

    async def probe(self, name: str) -> None:
        """Ask a transport's platform whether it answers (and takes our token) again."""
        transport = self._transports.get(name)
        if isinstance(transport, Probing):
            await transport.probe()

    async def edit(self, ref: MessageRef, message: Outgoing) -> MessageRef:
        return await self.transport_for(ref.chat).edit(ref, self._ready(message))

    def has_typing(self, chat: str) -> bool:
        """Whether the chat's platform shows a "typing…" indicator of its own."""
        return self.transport_for(chat).has_typing

    def streams(self, chat: str) -> Streams | None:
        """The chat's transport when it prints a streamed answer piece by piece."""
        transport = self.transport_for(chat)
        return transport if isinstance(transport, Streams) else None

    async def typing(self, chat: str) -> None:
        await self.transport_for(chat).typing(chat)

    async def delete(self, ref: MessageRef) -> None:
        await self.transport_for(ref.chat).delete(ref)

    async def answer_press(self, press: Incoming, text: str, *, alert: bool) -> None:
        await self.transport_for(press.chat).answer_press(press, self._redact(text), alert=alert)

    def scrub(self, message: Outgoing) -> Outgoing:
        """The message with stored secrets' values scrubbed (before it is stored or sent)."""
        text: Rich = tuple(replace(s, text=self._redact(s.text)) for s in message.text)
        return replace(message, text=text)

    def _ready(self, message: Outgoing) -> Outgoing:
        """What goes to the transport now: its placeholders minted, then scrubbed."""
        if any(span.url.startswith(MINTED) for span in message.text):
            text = tuple(self._minted(span, message.chat) for span in message.text)
            message = replace(message, text=text)
        return self.scrub(message)

    def _minted(self, span: Span, chat: str) -> Span:
        if not span.url.startswith(MINTED):
            return span
        kind, _, argument = span.url.removeprefix(MINTED).partition(":")
        minter = self._minters.get(kind)
        if minter is None:  # e.g. delivered by a process without the dashboard
            return Span(NOT_MINTED)
        url = minter(argument, chat)
        return Span(url, Style.LINK, url)
