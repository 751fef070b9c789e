"""Which agent each chat thread talks to, in the database so every process agrees.

A follow-up in a Slack thread goes to the agent named earlier in that thread; with
several processes behind one URL the follow-up may reach another process than the
one that saw the name, so the name is not kept in memory.

Every addressed thread adds a row, so rows a thread has not used for `KEEP_UNUSED`
are deleted. The delete rides along with a write, at most once per `PRUNE_EVERY` per
process, in that write's transaction; a read refreshes its row's time at
most once per `TOUCH_EVERY`, so a thread kept alive by follow-ups alone stays.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Delete
from sqlmodel import col, delete, update

from storage.clock import Clock
from storage.db import Database
from storage.models import ThreadAgent

KEEP_UNUSED = timedelta(days=30)
PRUNE_EVERY = timedelta(hours=1)
TOUCH_EVERY = timedelta(days=1)


class ThreadAgents:
    def __init__(self, *, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._pruned_at: datetime | None = None  # None: prune at the first write

    async def remember(self, thread: str, agent: str) -> None:
        """From now on the thread talks to `agent` (the newest name wins)."""
        now = self._clock.now()
        insert = self._db.insert
        statement = (
            insert(ThreadAgent)
            .values(thread_id=thread, agent=agent, updated_at=now)
            .on_conflict_do_update(
                index_elements=["thread_id"], set_={"agent": agent, "updated_at": now}
            )
        )
        async with self._db.write_session() as session:
            await session.exec(statement)
            if self._prune_due(now):
                await session.exec(_older_than(now - KEEP_UNUSED))
            await session.commit()

    async def agent(self, thread: str) -> str | None:
        async with self._db.session() as session:
            row = await session.get(ThreadAgent, thread)
        if row is None:
            return None
        now = self._clock.now()
        if row.updated_at < now - TOUCH_EVERY:
            await self._touch(thread, now)
        return row.agent

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
