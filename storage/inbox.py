"""The inbox: updates stored before the platform is told they arrived.

A redelivered update finds its key already here and is skipped, whichever process it
reaches (the key is the primary key: a second insert is a conflict, so it is taken).
An update stored but never handled because its process died is handed out again by a
live process, once that process is seen to be gone (`storage.processes`) — unless it
started a run: a run's row names its update and is stored before the run can act
(`bot.runner`), so such an update is marked handled instead, and its run is reported
as cut short (`bot.interrupted`). Handled again is only what had not acted yet.

On SQLite one process owns the file, so once it has stored a batch the durable way it
can tell new updates from redeliveries by the keys it has seen, and hand them out
while their rows are still being written (`accept_quickly`); the caller still waits
for the write before it acknowledges them to the platform.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any

from sqlalchemy import true
from sqlmodel import col, update

from storage.clock import Clock
from storage.db import Database
from storage.models import InboxItem
from storage.processes import Processes
from storage.runs import RunStore
from storage.writer import WriteBehind

RECENT_KEYS = 10_000  # a redelivery repeats what the last poll brought, not older updates


class Inbox:
    def __init__(
        self,
        *,
        db: Database,
        writer: WriteBehind,
        clock: Clock,
        processes: Processes | None = None,  # None: one process, whose start takes all
    ) -> None:
        self._db = db
        self._writer = writer
        self._clock = clock
        self._processes = processes
        self._owner = processes.me if processes else None  # written on what it takes
        self._seen: dict[str, None] = {}  # recent keys, oldest first
        self._trusts_seen = False  # set once a batch went through the database's check

    async def accept(self, items: Sequence[tuple[str, dict[str, Any]]]) -> set[str]:
        """Store new updates durably; return the keys that were not seen before."""
        if not items:
            return set()
        now = self._clock.now()
        rows = [
            {"key": key, "payload": payload, "received_at": now, "owner": self._owner}
            for key, payload in items
        ]
        insert = self._db.insert
        statement = (
            insert(InboxItem).values(rows).on_conflict_do_nothing().returning(col(InboxItem.key))
        )
        async with self._db.write_session() as session:
            result = await session.exec(statement)
            fresh = {row[0] for row in result}
            await session.commit()
        # Only what is stored counts as seen: a failed write is retried by the next poll.
        self._remember(key for key, _ in items)
        self._trusts_seen = self._db.is_sqlite
        return fresh

    def accept_quickly(
        self, items: Sequence[tuple[str, dict[str, Any]]]
    ) -> tuple[set[str], Awaitable[None]] | None:
        """New keys at once, and the write to wait for before acknowledging them; None
        where only the database can tell (PostgreSQL, or nothing stored since start)."""
        if not self._trusts_seen:
            return None
        now = self._clock.now()
        fresh = {key for key, _ in items if key not in self._seen}
        stored: Awaitable[None] = _done()
        for key, payload in items:
            if key in fresh:
                row = {"key": key, "payload": payload, "received_at": now, "owner": self._owner}
                stored = self._writer.insert(InboxItem, row, or_ignore=True, urgent=True)
        self._remember(fresh)
        return fresh, stored

    def _remember(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._seen[key] = None
        while len(self._seen) > RECENT_KEYS:
            del self._seen[next(iter(self._seen))]

    def mark_handled(self, key: str) -> None:
        """Mark an update done and drop its payload: the key alone stops a redelivery, and
        the text may hold a value typed for `/secret set` that must not stay stored."""
        row = {"key": key, "handled_at": self._clock.now(), "payload": {}}
        self._writer.update(InboxItem, "key", row)  # one executemany per write batch

    async def claim(self, key: str) -> bool:
        """Mark an update handled now, durably, before what it asks for happens (an effect
        that must not happen twice); False if it was handled already."""
        await self._writer.flush()  # its row may still be queued (`accept_quickly`)
        statement = (
            update(InboxItem)
            .where(col(InboxItem.key) == key, col(InboxItem.handled_at).is_(None))
            .values(handled_at=self._clock.now(), payload={})
        )
        async with self._db.write_session() as session:
            claimed = (await session.exec(statement)).rowcount == 1
            await session.commit()
        return claimed

    async def take_over(self) -> list[InboxItem]:
        """Take the unhandled updates of processes that are gone, oldest first; each
        goes to one taker. Those that started a run are marked handled, not returned."""
        owner = col(InboxItem.owner)
        orphaned = self._processes.orphaned(owner) if self._processes else true()
        statement = (
            update(InboxItem)
            .where(col(InboxItem.handled_at).is_(None), orphaned)
            .values(owner=self._owner)
            .returning(InboxItem)
        )
        async with self._db.write_session() as session:
            rows = list((await session.exec(statement)).scalars())
            await session.commit()
        started = await RunStore(self._db).started([row.key for row in rows])
        for key in started:
            self.mark_handled(key)
        fresh = [row for row in rows if row.key not in started]
        return sorted(fresh, key=lambda row: row.received_at)


def _done() -> Awaitable[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future
