"""Conversation memory per chat and agent, a running summary of older turns, and notes.

Rows are keyed by chat and a memory key: an agent's name, or a key shared by the
agents of one chat. Everything stored passes through `redact` first, so a secret's
value that shows up in a conversation never reaches the database.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import select as sa_select
from sqlmodel import col, delete, select
from sqlmodel.sql.expression import SelectOfScalar

from storage.clock import Clock
from storage.db import Database
from storage.models import Message, Note
from storage.writer import WriteBehind

SUMMARY = "summary"
CACHED_TURNS = 400  # messages kept in memory per chat and key; windows are at most 200 exchanges


@dataclass(frozen=True, slots=True)
class StoredTurn:
    """One remembered message (or the running summary), as the agents read it."""

    role: str
    content: str


@dataclass(slots=True)
class _Window:
    """What the database holds for one chat and key, mirrored to spare a read per message."""

    summary: StoredTurn | None
    turns: deque[StoredTurn]
    unsummarised: int  # turns not folded into the summary (may exceed what `turns` keeps)


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
        # One process owns a SQLite file; on a shared PostgreSQL another process may write
        # the same chat, so there every read goes to the database.
        self._cache: dict[tuple[str, str], _Window] | None = {} if db.is_sqlite else None

    def remember_turn(self, chat_id: str, agent: str, role: str, content: str) -> None:
        """Queue one turn; it lands with the next write batch."""
        row = self._row(chat_id, agent, role, content)
        self._writer.insert(Message, row)
        window = self._cache.get((chat_id, agent)) if self._cache is not None else None
        if window is not None:
            window.turns.append(StoredTurn(role, row["content"]))
            window.unsummarised += 1

    async def recent_turns(self, chat_id: str, agent: str, turns: int) -> Sequence[StoredTurn]:
        """The running summary (if any), then the last `turns` exchanges, oldest first."""
        if turns <= 0:
            return []
        window = await self._window(chat_id, agent)
        recent = list(window.turns)[-turns * 2 :]
        return ([window.summary] if window.summary else []) + recent

    async def unsummarised_count(self, chat_id: str, agent: str) -> int:
        return (await self._window(chat_id, agent)).unsummarised

    async def _window(self, chat_id: str, agent: str) -> _Window:
        cached = self._cache.get((chat_id, agent)) if self._cache is not None else None
        if cached is not None:
            return cached
        await self._writer.flush()
        newest = self._turns(chat_id, agent).order_by(col(Message.id).desc())
        async with self._db.session() as session:
            rows = list((await session.exec(newest.limit(CACHED_TURNS))).all())
            summary = (await session.exec(self._summary(chat_id, agent))).first()
            count = len(rows)
            if count == CACHED_TURNS:
                count = len((await session.exec(self._turns(chat_id, agent))).all())
        turns = deque((_turn(row) for row in reversed(rows)), maxlen=CACHED_TURNS)
        window = _Window(_turn(summary) if summary else None, turns, count)
        if self._cache is not None:
            self._cache[(chat_id, agent)] = window
        return window

    def _drop(self, chat_id: str, agent: str | None) -> None:
        if self._cache is None:
            return
        for key in [k for k in self._cache if k[0] == chat_id and agent in (None, k[1])]:
            del self._cache[key]

    async def unsummarised(self, chat_id: str, agent: str) -> tuple[str, list[StoredTurn]]:
        """The running summary's text and every turn not folded into it yet, oldest first."""
        window = self._cache.get((chat_id, agent)) if self._cache is not None else None
        if window is not None and window.unsummarised <= len(window.turns):
            summary = window.summary.content if window.summary else ""
            return summary, list(window.turns)[-window.unsummarised :]
        await self._writer.flush()
        async with self._db.session() as session:
            rows = (await session.exec(self._turns(chat_id, agent).order_by(col(Message.id)))).all()
            summary_row = (await session.exec(self._summary(chat_id, agent))).first()
        return (summary_row.content if summary_row else ""), [_turn(row) for row in rows]

    def fold(self, chat_id: str, agent: str, folded: int, summary: str) -> None:
        """Replace the oldest `folded` turns and the old summary by a new summary.

        Queued like the turns themselves, so it lands after them, in order; nothing waits.
        """
        row = self._row(chat_id, agent, SUMMARY, summary)
        self._writer.submit(lambda conn: _replace_with_summary(conn, chat_id, agent, folded, row))
        window = self._cache.get((chat_id, agent)) if self._cache is not None else None
        if window is None:
            return
        window.summary = StoredTurn(SUMMARY, row["content"])
        for _ in range(min(folded, len(window.turns))):
            window.turns.popleft()
        window.unsummarised = max(0, window.unsummarised - folded)

    async def forget(self, chat_id: str, agent: str | None = None) -> int:
        """Drop the conversation in a chat (one memory key's or all); returns rows removed."""
        await self._writer.flush()
        query = delete(Message).where(col(Message.chat_id) == chat_id)
        if agent is not None:
            query = query.where(col(Message.agent) == agent)
        async with self._db.session() as session:
            result = await session.exec(query)
            await session.commit()
        self._drop(chat_id, agent)
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

    def _row(self, chat_id: str, agent: str, role: str, content: str) -> dict[str, Any]:
        return {
            "chat_id": chat_id,
            "agent": agent,
            "role": role,
            "content": self._redact(content),
            "created_at": self._now(),
        }

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


def _turn(row: Message) -> StoredTurn:
    return StoredTurn(row.role, row.content)


def _replace_with_summary(
    conn: Connection, chat_id: str, agent: str, folded: int, summary: dict[str, Any]
) -> None:
    table = Message.__table__  # type: ignore[attr-defined]
    mine = (table.c.chat_id == chat_id, table.c.agent == agent)
    oldest = (
        sa_select(table.c.id)
        .where(*mine, table.c.role != SUMMARY)
        .order_by(table.c.id)
        .limit(folded)
        .scalar_subquery()
    )
    conn.execute(table.delete().where(*mine, table.c.role == SUMMARY))
    conn.execute(table.delete().where(table.c.id.in_(oldest)))
    conn.execute(table.insert(), [summary])
