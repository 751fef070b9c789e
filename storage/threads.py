"""Which agent each chat thread talks to, in the database so every process agrees.

A follow-up in a Slack thread goes to the agent named earlier in that thread; with
several processes behind one URL the follow-up may reach another process than the
one that saw the name, so the name is not kept in memory.

A name is written through the write-behind queue (`storage.writer`) and awaited: the
names of a burst of mentions ("@ops …" in 300 threads at once) share one commit, not one
each before each mention can be acknowledged.

Every addressed thread adds a row, so rows a thread has not used for `KEEP_UNUSED`
are deleted. The delete rides along with a write, at most once per `PRUNE_EVERY` per
process, in that write's transaction; a read refreshes its row's time at
most once per `TOUCH_EVERY`, so a thread kept alive by follow-ups alone stays.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, Delete, Executable
from sqlmodel import col, delete, select, update

from storage.clock import Clock
from storage.db import Database
from storage.models import ThreadAgent
from storage.writer import WriteBehind

KEEP_UNUSED = timedelta(days=30)
PRUNE_EVERY = timedelta(hours=1)
TOUCH_EVERY = timedelta(days=1)


class ThreadAgents:
    def __init__(self, *, db: Database, writer: WriteBehind, clock: Clock) -> None:
        self._db = db
        self._writer = writer
        self._clock = clock
        self._pruned_at: datetime | None = None  # None: prune at the first write
        self._upsert_statement: Executable | None = None

    async def remember(self, thread: str, agent: str) -> None:
        """From now on the thread talks to `agent` (the newest name wins)."""
        now = self._clock.now()
        statement = self._upsert()
        row = {"thread_id": thread, "agent": agent, "updated_at": now}
        prune = _older_than(now - KEEP_UNUSED) if self._prune_due(now) else None

        def write(conn: Connection) -> None:
            conn.execute(statement, row)
            if prune is not None:
                conn.execute(prune)

        await self._writer.write(write)

    async def agent(self, thread: str) -> str | None:
        """The agent named last in the thread (read in one hop: a burst of follow-ups
        asks this once per message, before each can be acknowledged)."""
        query = select(ThreadAgent.agent, ThreadAgent.updated_at).where(
            col(ThreadAgent.thread_id) == thread
        )
        row = await self._db.read(lambda conn: conn.execute(query).first())
        if row is None:
            return None
        agent, updated_at = row
        now = self._clock.now()
        if updated_at < now - TOUCH_EVERY:
            await self._touch(thread, now)
        return str(agent)

    def _upsert(self) -> Executable:
        """Insert or replace a thread's agent, the values bound at execution: built once,
        it is compiled once (building it per call cost more than running it)."""
        if self._upsert_statement is None:
            statement = self._db.insert(ThreadAgent)
            self._upsert_statement = statement.on_conflict_do_update(
                index_elements=["thread_id"],
                set_={
                    "agent": statement.excluded.agent,
                    "updated_at": statement.excluded.updated_at,
                },
            )
        return self._upsert_statement

    def _prune_due(self, now: datetime) -> bool:
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return False
        self._pruned_at = now
        return True

    async def _touch(self, thread: str, now: datetime) -> None:
        statement = update(ThreadAgent).where(col(ThreadAgent.thread_id) == thread)
        async with self._db.write_session() as session:
            await session.exec(statement.values(updated_at=now))
            await session.commit()


def _older_than(cutoff: datetime) -> Delete:
    return delete(ThreadAgent).where(col(ThreadAgent.updated_at) < cutoff)
