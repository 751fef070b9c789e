"""Open a real deck in this process, and read what it audited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from sqlmodel import select

from bot.app import open_deck
from bot.config import Config
from bot.deck import Deck
from storage.clock import FakeClock
from storage.models import AuditEvent
from tests.fakes.chat import ChatRecorder

DeckFactory = Callable[[Config], AbstractAsyncContextManager[tuple[Deck, ChatRecorder]]]


@asynccontextmanager
async def chat_deck(
    config: Config, clock: FakeClock | None = None
) -> AsyncIterator[tuple[Deck, ChatRecorder]]:
    """A deck whose only transport is a `ChatRecorder` (chat ids `test:...`)."""
    chat = ChatRecorder()
    async with asyncio.timeout(60), open_deck(config, clock=clock, transports=[chat]) as (deck, _):
        yield deck, chat


@asynccontextmanager
async def running(config: Config) -> AsyncIterator[Deck]:
    """A deck on the transports its config names (the fakes), for at most 30 s."""
    async with asyncio.timeout(30), open_deck(config) as (deck, _):
        yield deck


async def audit_actions(deck: Deck) -> list[str]:
    """Every audit event's action so far, oldest first (queued writes flushed first)."""
    await deck.runner.flush()
    async with deck.db.session() as session:
        return [e.action for e in (await session.exec(select(AuditEvent))).all()]
