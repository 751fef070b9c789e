"""The inbox: updates stored before the platform is told they arrived.

A redelivered update finds its key already here and is skipped, whichever process it
reaches (the key is the primary key: a second insert is a conflict, so it is taken).
An update stored but never handled because its process died is handed out again by a
live process, once that process is seen to be gone (`storage.processes`) — unless it
started a run: a run's row names its update and is stored before the run can act
(`bot.runs.runner`), so such an update is marked handled instead, and its run is reported
as cut short (`bot.runs.interrupted`). Handled again is only what had not acted yet.

On SQLite one process owns the file, so once it has stored a batch the durable way it
can tell new updates from redeliveries by the keys it has seen, and hand them out
while their rows are still being written (`accept_quickly`); the caller still waits
for the write before it acknowledges them to the platform.

A payload is stored in the form `stored` gives it (the bot drops the arguments of
commands that carry private values, such as `/secret set`), before anything is written.

Storing waits out a database that is unreachable or full (`storage.faults`), as long as
it takes: the platform has not been answered, so it holds the updates meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import true
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select, update

from storage.clock import Clock
from storage.db import Database
from storage.faults import retrying
from storage.models import InboxItem
from storage.processes import Processes
from storage.runs import RunStore
from storage.writer import WriteBehind

RECENT_KEYS = 10_000  # a redelivery repeats what the last poll brought, not older updates
Payload = dict[str, Any]
# A call to `accept`: its updates, and the keys of them that are new, once stored.
Queued = tuple[Sequence[tuple[str, Payload]], "asyncio.Future[set[str]]"]


def _settle(future: asyncio.Future[set[str]], outcome: set[str] | Exception) -> None:
    """Give a waiting `accept` its answer; one whose caller went away is left alone."""
    if future.cancelled():
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
        future.exception()  # read here too: a caller gone must not log "never retrieved"
    else:
        future.set_result(outcome)


def _as_is(payload: Payload) -> Payload:
    return payload


class Inbox:
    def __init__(
        self,
        *,
        db: Database,
        writer: WriteBehind,
        clock: Clock,
        processes: Processes | None = None,  # None: one process, whose start takes all
        stored: Callable[[Payload], Payload] = _as_is,  # the form a payload is stored in
    ) -> None:
        self._db = db
        self._stored = stored
        self._writer = writer
        self._clock = clock
        self._processes = processes
        self._owner = processes.me if processes else None  # written on what it takes
        self._seen: dict[str, None] = {}  # recent keys, oldest first
        self._trusts_seen = False  # set once a batch went through the database's check
        self._queued: list[Queued] = []  # calls waiting for the next insert
        self._storing: asyncio.Task[None] | None = None  # the insert under way

    async def accept(self, items: Sequence[tuple[str, dict[str, Any]]]) -> set[str]:
        """Store new updates durably; return the keys that were not seen before.

        One insert at a time: what other calls bring meanwhile (a burst of webhook POSTs,
        each with one update) is stored by the next insert, together, in one round trip.
        A key that two of them bring is new for the first only. The inserts run in a task
        of their own, so a caller that goes away (cancelled) never cuts one short: the
        others' rows are stored and their answers given whatever happens to it.

        While the database is unreachable (a restart) or full this waits and tries
        again; the caller has not acknowledged the updates, so nothing is lost meanwhile.
        """
        if not items:
            return set()
        mine: Queued = (items, asyncio.get_running_loop().create_future())
        self._queued.append(mine)
        if self._storing is None:
            self._storing = asyncio.create_task(self._store_queued(), name="inbox-accept")
        return await asyncio.shield(mine[1])

    async def _store_queued(self) -> None:
        batch: list[Queued] = []
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                try:
                    fresh = await self._accept_now([item for items, _ in batch for item in items])
                except Exception as exc:
                    for _, future in batch:
                        _settle(future, exc)
                    continue
                for items, future in batch:
                    keys = {key for key, _ in items}
                    _settle(future, keys & fresh)
                    fresh -= keys
        finally:
            self._storing = None
            for _, future in batch + self._queued:  # stopped (shutdown): none waits forever
                if not future.done():
                    future.cancel()
            self._queued = []

    async def _accept_now(self, items: Sequence[tuple[str, dict[str, Any]]]) -> set[str]:
        now = self._clock.now()
        rows = [self._row(key, payload, now) for key, payload in items]
        attempts = 0

        async def store() -> set[str]:
            nonlocal attempts
            attempts += 1
            return await self._store(rows, now, retried=attempts > 1)

        fresh = await retrying(store, "storing received updates", pressure=self._db.pressure)
        # Only what is stored counts as seen: a failed write is retried by the next poll.
        self._remember(key for key, _ in items)
        self._trusts_seen = self._db.is_sqlite
        return fresh

    async def _store(self, rows: list[dict[str, Any]], now: datetime, *, retried: bool) -> set[str]:
        insert = self._db.insert
        statement = (
            insert(InboxItem).values(rows).on_conflict_do_nothing().returning(col(InboxItem.key))
        )
        async with self._db.statement_alone() as conn:  # the insert is atomic by itself
            fresh = {row[0] for row in await conn.execute(statement)}
            if retried and len(fresh) < len(rows):
                fresh |= await self._stored_by_lost_attempt(conn, rows, fresh, now)
        return fresh

    async def _stored_by_lost_attempt(
        self, conn: AsyncConnection, rows: list[dict[str, Any]], fresh: set[str], now: datetime
    ) -> set[str]:
        """Keys an earlier attempt of this call stored although its answer was lost (the
        connection broke after the commit): the rows carry its exact time and owner. A
        redelivery stored by another call has another time, and stays not new."""
        taken = [row["key"] for row in rows if row["key"] not in fresh]
        query = select(InboxItem.key).where(
            col(InboxItem.key).in_(taken),
            col(InboxItem.received_at) == now,
            col(InboxItem.owner).is_not_distinct_from(self._owner),
            col(InboxItem.handled_at).is_(None),
        )
        return set((await conn.execute(query)).scalars())

    def accept_quickly(
        self, items: Sequence[tuple[str, dict[str, Any]]]
    ) -> tuple[set[str], Awaitable[object]] | None:
        """New keys at once, and the write to wait for before acknowledging them; None
        where only the database can tell (PostgreSQL, or nothing stored since start)."""
        if not self._trusts_seen:
            return None
        now = self._clock.now()
        fresh = {key for key, _ in items if key not in self._seen}
        writes = [
            self._writer.insert(
                InboxItem, self._row(key, payload, now), or_ignore=True, urgent=True
            )
            for key, payload in items
            if key in fresh
        ]
        self._remember(fresh)
        # Each row has its own outcome: all must be stored before any is acknowledged.
        return fresh, asyncio.gather(*writes)

    def _row(self, key: str, payload: Payload, now: datetime) -> dict[str, Any]:
        return {
            "key": key,
            "payload": self._stored(payload),
            "received_at": now,
            "owner": self._owner,
        }

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
        async with self._db.statement_alone() as conn:
            claimed = (await conn.execute(statement)).rowcount == 1
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
