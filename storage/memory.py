"""Conversation memory per chat and agent, and long-term notes."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import col, delete, select

from storage.clock import Clock
from storage.db import Database
from storage.models import Message, Note
from storage.writer import WriteBehind


class Memory:
    def __init__(self, *, db: Database, writer: WriteBehind, clock: Clock) -> None:
        self._db = db
        self._writer = writer
        self._clock = clock

    def remember_turn(self, chat_id: str, agent: str, role: str, content: str) -> None:
        """Queue one turn; it lands with the next write batch."""
        row = Message(
            chat_id=chat_id, agent=agent, role=role, content=content, created_at=self._clock.now()
        )

        async def add(session):  # type: ignore[no-untyped-def]
            session.add(row)

        self._writer.submit(add)

    async def recent_turns(self, chat_id: str, agent: str, turns: int) -> Sequence[Message]:
        """The last `turns` exchanges (two messages each), oldest first."""
        if turns <= 0:
            return []
        await self._writer.flush()
        query = (
            select(Message)
            .where(Message.chat_id == chat_id, Message.agent == agent)
            .order_by(col(Message.id).desc())
            .limit(turns * 2)
        )
        async with self._db.session() as session:
            rows = (await session.exec(query)).all()
        return list(reversed(rows))

    async def forget(self, chat_id: str, agent: str | None = None) -> int:
        """Drop the conversation in a chat (one agent's or all); returns rows removed."""
        await self._writer.flush()
        query = delete(Message).where(col(Message.chat_id) == chat_id)
        if agent is not None:
            query = query.where(col(Message.agent) == agent)
        async with self._db.session() as session:
            result = await session.exec(query)
            await session.commit()
        return int(result.rowcount or 0)

    async def add_note(self, chat_id: str, agent: str, text: str) -> None:
        async with self._db.session() as session:
            session.add(Note(chat_id=chat_id, agent=agent, text=text, created_at=self._clock.now()))
            await session.commit()

    async def notes(
        self, chat_id: str, agent: str, keyword: str = "", limit: int = 20
    ) -> Sequence[Note]:
        query = select(Note).where(Note.chat_id == chat_id, Note.agent == agent)
        if keyword:
            query = query.where(col(Note.text).icontains(keyword))
        query = query.order_by(col(Note.id).desc()).limit(limit)
        async with self._db.session() as session:
            return (await session.exec(query)).all()
