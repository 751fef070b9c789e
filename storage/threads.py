"""Which agent each chat thread talks to, in the database so every process agrees.

A follow-up in a Slack thread goes to the agent named earlier in that thread; with
several processes behind one URL the follow-up may reach another process than the
one that saw the name, so the name is not kept in memory.
"""

from __future__ import annotations

from storage.clock import Clock
from storage.db import Database
from storage.models import ThreadAgent


class ThreadAgents:
    def __init__(self, *, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

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
            await session.commit()

    async def agent(self, thread: str) -> str | None:
        async with self._db.session() as session:
            row = await session.get(ThreadAgent, thread)
        return row.agent if row else None
