"""Conversation memory per chat and agent, a running summary of older turns, and notes.

Rows are keyed by chat and a memory key: an agent's name, or a key shared by the
agents of one chat. Everything stored passes through `redact` first, so a secret's
value that shows up in a conversation never reaches the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, union_all
from sqlalchemy import select as sa_select
from sqlmodel import col, delete, select
from sqlmodel.sql.expression import SelectOfScalar

from storage.clock import Clock
from storage.db import Database
from storage.errors import WriteFailed
from storage.models import Message, Note
from storage.writer import WriteBehind

SUMMARY = "summary"
CACHED_TURNS = 400  # messages kept in memory per chat and key; windows are at most 200 exchanges
# PostgreSQL: a run's window, read for its history, answers the same run's question of
# how many turns wait to be folded (`unsummarised_count`) if asked within this time.
LATELY_SECONDS = 60.0
LATELY_KEYS = 10_000


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
        # Turns queued for a key that has no window yet: reading it waits for this write
        # only, not for every queued write (50 new chats at once each read their window).
        self._unwritten: dict[tuple[str, str], asyncio.Future[None]] = {}
        # SQLite: the keys the database held at the first read, and those written since;
        # a key in neither has no memory, and its (empty) window needs no read.
        self._stored_keys: asyncio.Task[set[tuple[str, str]]] | None = None
        self._written_keys: set[tuple[str, str]] = set()
        # PostgreSQL: the window each key's history was last read from, with this
        # process's turns since added, and when; taken once by `unsummarised_count`. Its
        # count may miss another process's turns: that only moves a fold by a turn or two
        # (the fold itself reads what is stored).
        self._lately: dict[tuple[str, str], tuple[float, _Window]] = {}

    def remember_turn(self, chat_id: str, agent: str, role: str, content: str) -> None:
        """Queue one turn; it lands with the next write batch."""
        row = self._row(chat_id, agent, role, content)
        written = self._writer.insert(Message, row)
        self._written_keys.add((chat_id, agent))
        window = self._cache.get((chat_id, agent)) if self._cache is not None else None
        if window is None:
            self._wait_before_reading((chat_id, agent), written)
            lately = self._lately.get((chat_id, agent))
            window = lately[1] if lately else None
        if window is not None:
            window.turns.append(StoredTurn(role, row["content"]))
            window.unsummarised += 1

    def _wait_before_reading(self, key: tuple[str, str], written: asyncio.Future[None]) -> None:
        self._unwritten[key] = written

        def written_now(done: asyncio.Future[None]) -> None:
            if self._unwritten.get(key) is done:
                del self._unwritten[key]

        written.add_done_callback(written_now)

    async def recent_turns(self, chat_id: str, agent: str, turns: int) -> Sequence[StoredTurn]:
        """The running summary (if any), then the last `turns` exchanges, oldest first."""
        if turns <= 0:
            return []
        window = await self._window(chat_id, agent)
        recent = list(window.turns)[-turns * 2 :]
        if self._cache is None:
            self._keep_lately((chat_id, agent), window)
        return ([window.summary] if window.summary else []) + recent

    async def unsummarised_count(self, chat_id: str, agent: str) -> int:
        lately = self._lately.pop((chat_id, agent), None)
        if lately is not None and time.monotonic() - lately[0] < LATELY_SECONDS:
            return lately[1].unsummarised  # PostgreSQL: from this run's history read
        return (await self._window(chat_id, agent)).unsummarised

    def _keep_lately(self, key: tuple[str, str], window: _Window) -> None:
        self._lately.pop(key, None)
        self._lately[key] = (time.monotonic(), window)
        while len(self._lately) > LATELY_KEYS:
            del self._lately[next(iter(self._lately))]

    async def _window(self, chat_id: str, agent: str) -> _Window:
        cached = self._cache.get((chat_id, agent)) if self._cache is not None else None
        if cached is not None:
            return cached
        if self._cache is not None and not await self._may_have_turns(chat_id, agent):
            window = self._cache[(chat_id, agent)] = _Window(None, deque(maxlen=CACHED_TURNS), 0)
            return window
        pending = self._unwritten.pop((chat_id, agent), None)
        if pending is not None:
            with contextlib.suppress(WriteFailed):  # refused and logged: read what is stored
                await asyncio.shield(pending)
        summary, turns, count = await self._db.read(lambda conn: _read_window(conn, chat_id, agent))
        window = _Window(summary, deque(turns, maxlen=CACHED_TURNS), count)
        if self._cache is not None:
            self._cache[(chat_id, agent)] = window
        return window

    async def _may_have_turns(self, chat_id: str, agent: str) -> bool:
        key = (chat_id, agent)
        if key in self._written_keys:
            return True
        if self._stored_keys is None:
            self._stored_keys = asyncio.ensure_future(self._db.read(_keys_with_turns))
        loading = self._stored_keys
        try:
            return key in await asyncio.shield(loading)
        except Exception:
            if self._stored_keys is loading:
                self._stored_keys = None  # the next message asks the database again
            raise

    def _drop(self, chat_id: str, agent: str | None) -> None:
        for key in [k for k in self._lately if k[0] == chat_id and agent in (None, k[1])]:
            del self._lately[key]
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
        written = self._writer.submit(
            lambda conn: _replace_with_summary(conn, chat_id, agent, folded, row)
        )
        window = self._cache.get((chat_id, agent)) if self._cache is not None else None
        self._lately.pop((chat_id, agent), None)
        if window is None:
            self._wait_before_reading((chat_id, agent), written)
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


def _keys_with_turns(conn: Connection) -> set[tuple[str, str]]:
    table = Message.__table__  # type: ignore[attr-defined]
    rows = conn.execute(sa_select(table.c.chat_id, table.c.agent).distinct())
    return {(chat_id, agent) for chat_id, agent in rows}


def _read_window(
    conn: Connection, chat_id: str, agent: str
) -> tuple[StoredTurn | None, list[StoredTurn], int]:
    """The summary, up to CACHED_TURNS newest turns (oldest first) and how many turns.

    One statement for the summary and the turns: on PostgreSQL every run reads its
    window, and each statement is a round trip on the way to its answer.
    """
    table = Message.__table__  # type: ignore[attr-defined]
    mine = (table.c.chat_id == chat_id, table.c.agent == agent)
    shown = (table.c.id, table.c.role, table.c.content)
    newest = (
        sa_select(*shown)
        .where(*mine, table.c.role != SUMMARY)
        .order_by(table.c.id.desc())
        .limit(CACHED_TURNS)
        .subquery()
    )
    summary = (
        sa_select(*shown)
        .where(*mine, table.c.role == SUMMARY)
        .order_by(table.c.id.desc())
        .limit(1)
        .subquery()
    )
    both = union_all(sa_select(newest), sa_select(summary))
    rows = sorted(conn.execute(both), key=lambda row: row[0])  # by id: oldest first
    summary_turn = next((StoredTurn(SUMMARY, c) for _, role, c in rows if role == SUMMARY), None)
    turns = [StoredTurn(role, content) for _, role, content in rows if role != SUMMARY]
    count = len(turns)
    if count == CACHED_TURNS:
        everything = sa_select(func.count()).where(*mine, table.c.role != SUMMARY)
        count = int(conn.execute(everything).scalar() or 0)
    return summary_turn, turns, count


def _turn(row: Message) -> StoredTurn:
    return StoredTurn(row.role, row.content)


def _replace_with_summary(
    conn: Connection, chat_id: str, agent: str, folded: int, summary: dict[str, Any]
) -> None:
    """On PostgreSQL both processes of a team may fold one chat at once: the rows are
    locked first, in id order, so neither holds one the other needs before it (deleting
    by a subquery locked them in whatever order the plan met them: a deadlock)."""
    table = Message.__table__  # type: ignore[attr-defined]
    mine = (table.c.chat_id == chat_id, table.c.agent == agent)
    query = sa_select(table.c.id, table.c.role).where(*mine).order_by(table.c.id)
    if conn.dialect.name != "sqlite":
        query = query.with_for_update()
    rows = conn.execute(query).all()
    summaries = [row_id for row_id, role in rows if role == SUMMARY]
    oldest = [row_id for row_id, role in rows if role != SUMMARY][:folded]
    if summaries or oldest:
        conn.execute(table.delete().where(table.c.id.in_(summaries + oldest)))
    conn.execute(table.insert(), [summary])
