"""The model each chat switched an llm agent to (`/model`), in the database.

Read at the start of every run of an llm agent, so a switch holds across restarts and
for every process serving the chat. Whether a stored choice is still allowed is the
roster's question (`roster.providers.Providers.chain`): a choice the config no longer
lists is ignored, not obeyed.
"""

from __future__ import annotations

from sqlmodel import col, delete, select

from storage.clock import Clock
from storage.db import Database
from storage.models import ChatModel


class ChatModels:
    def __init__(self, *, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def chosen(self, chat: str, agent: str) -> str | None:
        """The model `chat` picked for `agent`, or None (the agent's own)."""
        async with self._db.session() as session:
            row = await session.get(ChatModel, (chat, agent))
        return None if row is None else row.model

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

    async def clear(self, chat: str, agent: str) -> bool:
        """Back to the agent's own model; False when the chat had not picked another."""
        statement = delete(ChatModel).where(
            col(ChatModel.chat_id) == chat, col(ChatModel.agent) == agent
        )
        async with self._db.write_session() as session:
            result = await session.exec(statement)
            await session.commit()
        return bool(result.rowcount)
