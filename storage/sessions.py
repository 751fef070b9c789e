"""Coding agents' sessions per chat (or thread), so a follow-up resumes the same session.

A Claude Code or Codex session lives in the CLI's own files, named by an id; this table
keeps which id each chat (each Slack thread) has with each agent, and what the session
did so far (turns, cost, tokens), so `/sessions` can list them and a restart resumes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import col, delete, select

from storage.clock import Clock
from storage.db import Database
from storage.models import AgentSession


@dataclass(frozen=True, slots=True)
class TurnReport:
    """What a turn of a session reported: the CLI's running totals, and what it used."""

    session_id: str
    cost: float = 0.0  # this turn's own cost
    cost_total: float = 0.0  # the CLI's running total for the session (Claude)
    tokens_in: int = 0  # the session's totals so far (Codex reports the thread's)
    tokens_out: int = 0


class AgentSessions:
    def __init__(self, *, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def get(self, chat_key: str, agent: str) -> AgentSession | None:
        async with self._db.session() as session:
            return await session.get(AgentSession, (chat_key, agent))

    async def begin(self, chat_key: str, agent: str, session_id: str) -> None:
        """Keep a session's id as soon as the CLI names it: a turn cut short (a stop, a
        restart) is resumed by the next message, not lost."""
        row = await self.get(chat_key, agent)
        if row is not None and row.session_id == session_id:
            return
        now = self._clock.now()
        async with self._db.write_session() as session:
            if row is not None:
                await session.delete(await session.merge(row))
                await session.flush()
            session.add(
                AgentSession(
                    chat_key=chat_key,
                    agent=agent,
                    session_id=session_id,
                    started_at=now,
                    used_at=now,
                )
            )
            await session.commit()

    async def record(self, chat_key: str, agent: str, turn: TurnReport) -> None:
        """Count a finished turn; a new session id (a fresh start) restarts the counts."""
        now = self._clock.now()
        async with self._db.write_session() as session:
            row = await session.get(AgentSession, (chat_key, agent))
            if row is None or row.session_id != turn.session_id:
                if row is not None:
                    await session.delete(row)
                    await session.flush()
                row = AgentSession(
                    chat_key=chat_key, agent=agent, session_id=turn.session_id, started_at=now
                )
            row.turns += 1
            row.cost += turn.cost
            row.cost_total = turn.cost_total
            row.tokens_in, row.tokens_out = turn.tokens_in, turn.tokens_out
            row.used_at = now
            session.add(row)
            await session.commit()

    async def forget(self, chat_key: str, agent: str | None = None) -> int:
        """End the chat's session with `agent` (or all): the next message starts afresh."""
        statement = delete(AgentSession).where(col(AgentSession.chat_key) == chat_key)
        if agent is not None:
            statement = statement.where(col(AgentSession.agent) == agent)
        async with self._db.write_session() as session:
            result = await session.exec(statement)
            await session.commit()
        return int(result.rowcount or 0)

    async def of_chat(self, chat_key: str) -> Sequence[AgentSession]:
        statement = (
            select(AgentSession)
            .where(col(AgentSession.chat_key) == chat_key)
            .order_by(col(AgentSession.used_at).desc())
        )
        async with self._db.session() as session:
            return list((await session.exec(statement)).all())


def chat_key(chat: str, thread: str | None) -> str:
    """Where a session belongs: the chat, or the thread within it (a Slack thread's id
    names its channel already: `slack:C1/1700000000.000001`)."""
    if not thread:
        return chat
    return thread if thread.startswith(f"{chat}/") else f"{chat}/{thread}"
