"""What a command handler gets: the message, its arguments, and the deck's services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.config import Role
from bot.text import Piece, rich
from bot.types import Incoming, Outgoing

if TYPE_CHECKING:
    from bot.commands import Commands
    from bot.deck import Deck


@dataclass(frozen=True, slots=True)
class CommandContext:
    deck: Deck
    incoming: Incoming
    name: str
    args: str
    role: Role
    commands: Commands  # the table this command came from (/help lists it)

    @property
    def user(self) -> str:
        return self.incoming.user

    async def reply(self, *pieces: Piece) -> None:
        message = Outgoing(chat=self.incoming.chat, thread=self.incoming.thread, text=rich(*pieces))
        await self.deck.postman.send(message)
