"""Conversation memory per chat and agent, a running summary of older turns, and notes.

Rows are keyed by chat and a memory key: an agent's name, or a key shared by the
agents of one chat. Everything stored passes through `redact` first, so a secret's
value that shows up in a conversation never reaches the database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlmodel import col, delete, select
from sqlmodel.sql.expression import SelectOfScalar

from storage.clock import Clock
from storage.db import Database
from storage.models import Message, Note
from storage.writer import WriteBehind

SUMMARY = "summary"


def _unchanged(text: str) -> str:
    return text


class Memory:
    def __init__(
        self,
        *,
        db: Database,
        writer: WriteBehind,
        clock: Clock,
        redact: Callable[[str], str] = _unchanged,
    ) -> None:
        self._db = db
        self._writer = writer
        self._clock = clock
        self._redact = redact

    def remember_turn(self, chat_id: str, agent: str, role: str, content: str) -> None:
        """Queue one turn; it lands with the next write batch."""
        row = self._message(chat_id, agent, role, content)

        async def add(session: Any) -> None:
            session.add(row)

        self._writer.submit(add)

    async def recent_turns(self, chat_id: str, agent: str, turns: int) -> Sequence[Message]:
        """The running summary (if any), then the last `turns` exchanges, oldest first."""
        if turns <= 0:
            return []
        await self._writer.flush()
        window = self._turns(chat_id, agent).order_by(col(Message.id).desc()).limit(turns * 2)
        async with self._db.session() as session:
            rows = list((await session.exec(window)).all())
            summary = (await session.exec(self._summary(chat_id, agent))).first()
        return ([summary] if summary else []) + list(reversed(rows))

    async def unsummarised(self, chat_id: str, agent: str) -> tuple[str, list[Message]]:
        """The running summary's text and every turn not folded into it yet."""
        await self._writer.flush()
        async with self._db.session() as session:
            rows = (await session.exec(self._turns(chat_id, agent).order_by(col(Message.id)))).all()
            summary = (await session.exec(self._summary(chat_id, agent))).first()
        return (summary.content if summary else ""), list(rows)

    async def fold(self, chat_id: str, agent: str, upto_id: int, summary: str) -> None:
        """Replace the turns up to `upto_id` and the old summary by a new summary."""
        await self._writer.flush()
        where = (col(Message.chat_id) == chat_id, col(Message.agent) == agent)
        async with self._db.session() as session:
            await session.exec(delete(Message).where(*where, col(Message.role) == SUMMARY))
            await session.exec(delete(Message).where(*where, col(Message.id) <= upto_id))
            session.add(self._message(chat_id, agent, SUMMARY, summary))
            await session.commit()

    async def forget(self, chat_id: str, agent: str | None = None) -> int:
        """Drop the conversation in a chat (one memory key's or all); returns rows removed."""
        await self._writer.flush()
        query = delete(Message).where(col(Message.chat_id) == chat_id)
        if agent is not None:
            query = query.where(col(Message.agent) == agent)
        async with self._db.session() as session:
            result = await session.exec(query)
            await session.commit()
        return int(result.rowcount or 0)

    async def add_note(self, chat_id: str, agent: str, text: str) -> None:
        note = Note(chat_id=chat_id, agent=agent, text=self._redact(text), created_at=self._now())
        async with self._db.session() as session:
            session.add(note)
            await session.commit()

    async def notes(
        self, chat_id: str, agent: str | None, keyword: str = "", limit: int = 20
    ) -> Sequence[Note]:
        """Notes in a chat (one memory key's, or all when None), most recent first.

        Every word of `keyword` must appear in a note, in any case.
        """
        query = select(Note).where(Note.chat_id == chat_id)
        if agent is not None:
            query = query.where(Note.agent == agent)
        for word in keyword.split():
            query = query.where(col(Note.text).icontains(word, autoescape=True))
        query = query.order_by(col(Note.id).desc()).limit(limit)
        async with self._db.session() as session:
            return (await session.exec(query)).all()

    async def forget_notes(self, chat_id: str, agent: str | None = None) -> int:
        query = delete(Note).where(col(Note.chat_id) == chat_id)
        if agent is not None:
            query = query.where(col(Note.agent) == agent)
        async with self._db.session() as session:
            result = await session.exec(query)
            await session.commit()
        return int(result.rowcount or 0)

    def _message(self, chat_id: str, agent: str, role: str, content: str) -> Message:
        return Message(
            chat_id=chat_id,
            agent=agent,
            role=role,
            content=self._redact(content),
            created_at=self._now(),
        )

    def _now(self) -> datetime:
        return self._clock.now()

    @staticmethod
    def _turns(chat_id: str, agent: str) -> SelectOfScalar[Message]:
        return select(Message).where(
            Message.chat_id == chat_id, Message.agent == agent, col(Message.role) != SUMMARY
        )

    @staticmethod
    def _summary(chat_id: str, agent: str) -> SelectOfScalar[Message]:
        return (
            select(Message)
            .where(Message.chat_id == chat_id, Message.agent == agent, Message.role == SUMMARY)
            .order_by(col(Message.id).desc())
            .limit(1)
        )
