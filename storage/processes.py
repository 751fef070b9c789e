"""Process heartbeats: which agentdeck processes are alive, and what the dead ones left.

Every process keeps a row in `processes` and beats it; the runs and updates it takes
name it as their `owner`. A process whose heartbeat is older than the staleness window
is gone, and `orphaned(column)` picks the rows it left, so that a live process takes
them over (one `UPDATE … RETURNING` on the rows' current state: each row goes to one
taker, and a live process's rows are never touched).

After a database outage every heartbeat is stale, this process's own included: until
its own beats have gone on for the staleness window again, it takes nothing over (the
others are given the time to beat too).

On SQLite one process uses a database file (as `storage.locks` assumes), so every
owner but this process is gone, whatever its last heartbeat says.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, false, or_
from sqlalchemy.orm import Mapped
from sqlmodel import col, select

from storage.clock import Clock
from storage.db import Database
from storage.models import ProcessBeat


def process_id() -> str:
    """This process's name for others: host and pid, plus a random part, since a restarted
    container's process is pid 1 on the same host again."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Processes:
    def __init__(self, *, db: Database, clock: Clock, me: str, stale_after: timedelta) -> None:
        self._db = db
        self._clock = clock
        self.me = me
        self.stale_after = stale_after
        self._last_beat: datetime | None = None
        self._trust_from: datetime | None = None  # others' heartbeats count again from then

    async def beat(self) -> None:
        """Write this process's heartbeat (the row is created by the first one)."""
        now = self._clock.now()
        await self._write_beat(now)
        if self._last_beat is not None and now - self._last_beat > self.stale_after:
            # This process could not beat for a while (a database restart): nor could the
            # others, whose heartbeats now look stale. Let them beat again first.
            self._trust_from = now + self.stale_after
        self._last_beat = now

    async def _write_beat(self, now: datetime) -> None:
        insert = self._db.insert
        statement = (
            insert(ProcessBeat)
            .values(id=self.me, started_at=now, heartbeat_at=now)
            .on_conflict_do_update(index_elements=["id"], set_={"heartbeat_at": now})
        )
        async with self._db.write_session() as session:
            await session.exec(statement)
            await session.commit()

    async def leave(self) -> None:
        """A clean stop: no heartbeat row is left to go stale."""
        await self._delete(col(ProcessBeat.id) == self.me)

    async def forget_dead(self) -> None:
        """Drop the rows of processes gone for good (after their work was taken over)."""
        await self._delete(col(ProcessBeat.heartbeat_at) < self._cutoff())

    def orphaned(self, owner: Mapped[str | None]) -> ColumnElement[bool]:
        """Rows whose owner is no live process: none recorded, or one that stopped beating."""
        if self._db.is_sqlite:
            return or_(owner.is_(None), owner != self.me)
        if self._trust_from is not None and self._clock.now() < self._trust_from:
            return false()  # just back from an outage: a stale heartbeat proves nothing yet
        alive = select(ProcessBeat.id).where(col(ProcessBeat.heartbeat_at) >= self._cutoff())
        return or_(owner.is_(None), (owner != self.me) & owner.not_in(alive.scalar_subquery()))

    def _cutoff(self) -> datetime:
        return self._clock.now() - self.stale_after

    async def _delete(self, where: ColumnElement[bool]) -> None:
        async with self._db.write_session() as session:
            await session.exec(delete(ProcessBeat).where(where))
            await session.commit()
