"""The model each chat switched an llm agent to (`/model`), in the database.

Asked at the start of every run of an llm agent, so a switch holds across restarts and
for every process serving the chat. The table is small and read whole into memory:
a run asks the copy (a read per message cost a quarter of the llm agent's throughput).
A switch made here updates the copy at once; a copy older than `REFRESH_SECONDS` is read
again, so a switch made by another process on the same database (the several processes
of a team on PostgreSQL, or `agentdeck mcp` beside the bot on SQLite) holds here within
that time. Whether a stored choice is still allowed is the
roster's question (`roster.providers.Providers.chain`): a choice the config no longer
lists is ignored, not obeyed.
"""

from __future__ import annotations

import asyncio
import time

from sqlmodel import col, delete, select

from storage.clock import Clock
from storage.db import Database
from storage.models import ChatModel

REFRESH_SECONDS = 5.0


class ChatModels:
    def __init__(
        self, *, db: Database, clock: Clock, refresh_seconds: float = REFRESH_SECONDS
    ) -> None:
        self._db = db
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._copy: dict[tuple[str, str], str] | None = None
        self._read_at = 0.0
        self._reading = asyncio.Lock()

    async def chosen(self, chat: str, agent: str) -> str | None:
        """The model `chat` picked for `agent`, or None (the agent's own)."""
        copy = self._copy
        if copy is None or self._stale():
            copy = await self._read()
        return copy.get((chat, agent))

    def _stale(self) -> bool:
        return time.monotonic() - self._read_at > self._refresh_seconds

    async def _read(self) -> dict[tuple[str, str], str]:
        async with self._reading:
            if self._copy is not None and not self._stale():
                return self._copy  # read by another run meanwhile
            async with self._db.session() as session:
                rows = (await session.exec(select(ChatModel))).all()
            self._copy = {(row.chat_id, row.agent): row.model for row in rows}
            self._read_at = time.monotonic()
            return self._copy

    async def of_chat(self, chat: str) -> dict[str, str]:
        """Every choice of one chat: agent -> model."""
        statement = select(ChatModel).where(col(ChatModel.chat_id) == chat)
        async with self._db.session() as session:
            return {row.agent: row.model for row in (await session.exec(statement)).all()}

    async def choose(self, chat: str, agent: str, model: str, *, by: str) -> None:
        now = self._clock.now()
        values = {"model": model, "set_by": by, "set_at": now}
        statement = (
            self._db.insert(ChatModel)
            .values(chat_id=chat, agent=agent, **values)
            .on_conflict_do_update(index_elements=["chat_id", "agent"], set_=values)
        )
        async with self._db.write_session() as session:
            await session.exec(statement)
            await session.commit()
        if self._copy is not None:
            self._copy[(chat, agent)] = model

    async def clear(self, chat: str, agent: str) -> bool:
        """Back to the agent's own model; False when the chat had not picked another."""
        statement = delete(ChatModel).where(
            col(ChatModel.chat_id) == chat, col(ChatModel.agent) == agent
        )
        async with self._db.write_session() as session:
            result = await session.exec(statement)
            await session.commit()
        if self._copy is not None:
            self._copy.pop((chat, agent), None)
        return bool(result.rowcount)
