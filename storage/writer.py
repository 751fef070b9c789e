"""Group commit: many small writes from many conversations, one transaction per batch.

At hundreds of messages a second a commit per row would make the database the
bottleneck; queued writes are applied in order, in one transaction, as soon as the
previous batch is done. `write()` waits for the commit (use it where durability
matters, like the inbox before an update is acknowledged); `submit()` does not.

Plain inserts (`insert()`) are grouped per table into one executemany and run first in
their batch, before the other operations in the order they were submitted: an update
may follow the insert of its row in the same batch, never the other way round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import bindparam, insert
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.db import Database

log = logging.getLogger(__name__)

RETRY_FIRST_SECONDS = 0.1
RETRY_MAX_SECONDS = 5.0
GIVE_UP_WHEN_STOPPING_SECONDS = 30.0
# The database is down or restarting, not refusing this write: wait and try again.
_UNREACHABLE = (OperationalError, InterfaceError, OSError)

Op = Callable[[AsyncSession], Awaitable[None]]


class WriteBehind:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._ops: list[Op] = []
        self._inserts: dict[_Group, list[dict[str, Any]]] = {}
        self._updates: dict[_Shape, list[dict[str, Any]]] = {}
        self._batch_done: asyncio.Future[None] | None = None  # the queued batch
        self._inflight: asyncio.Future[None] | None = None  # the batch being committed
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def __aenter__(self) -> WriteBehind:
        self._task = asyncio.create_task(self._run(), name="storage-writer")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stopping = True
        self._wake.set()
        if self._task:
            await self._task

    def submit(self, op: Op) -> asyncio.Future[None]:
        """Queue a write; the returned future resolves once it is committed."""
        if self._batch_done is None:
            self._batch_done = asyncio.get_running_loop().create_future()
        self._ops.append(op)
        self._wake.set()
        return self._batch_done

    def insert(
        self, table: type[SQLModel], row: dict[str, Any], *, or_ignore: bool = False
    ) -> asyncio.Future[None]:
        """Queue a plain row insert (cheaper than an ORM object: no session bookkeeping).

        `or_ignore`: a row whose unique key exists already is skipped, not an error.
        """
        # Rows of one shape share an executemany; a row missing a key gets its own group.
        self._inserts.setdefault((table, tuple(sorted(row)), or_ignore), []).append(row)
        return self.submit(_nothing)

    def update(self, table: type[SQLModel], key: str, row: dict[str, Any]) -> asyncio.Future[None]:
        """Queue an update of the row whose `key` column equals `row[key]`; same-shaped
        updates of one batch become one executemany, run after the batch's inserts."""
        shape = (table, key, tuple(sorted(row)))
        self._updates.setdefault(shape, []).append(row)
        return self.submit(_nothing)

    async def write(self, op: Op) -> None:
        await self.submit(op)

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed."""
        last = self._batch_done or self._inflight
        if last is not None:
            await asyncio.shield(last)

    async def _run(self) -> None:
        while not (self._stopping and not self._ops):  # a stop drains the queue first
            await self._wake.wait()
            self._wake.clear()
            if self._ops:
                bulk = _bulk(self._inserts, self._updates, self._db)
                ops, done = [bulk, *self._ops], self._batch_done
                self._ops, self._inserts, self._updates = [], {}, {}
                self._batch_done, self._inflight = None, done
                await self._apply(ops)
                self._inflight = None
                if done is not None and not done.done():
                    done.set_result(None)

    async def _apply(self, ops: list[Op]) -> None:
        """Commit a batch; wait out an unreachable database; isolate a bad write."""
        delay = RETRY_FIRST_SECONDS
        waited = 0.0
        while True:
            try:
                await self._commit(ops)
                return
            except _UNREACHABLE as exc:
                if self._stopping and waited >= GIVE_UP_WHEN_STOPPING_SECONDS:
                    log.error("database still unreachable at shutdown; %d writes lost", len(ops))
                    return
                log.warning(
                    "database unreachable (%s); retrying in %.1f s", _first_line(exc), delay
                )
                await asyncio.sleep(delay)
                waited += delay
                delay = min(delay * 2, RETRY_MAX_SECONDS)
            except SQLAlchemyError:
                break
        # One bad write must not take the rest of the batch with it.
        for op in ops:
            try:
                await self._commit([op])
            except SQLAlchemyError:
                log.exception("a queued database write failed and was dropped")

    async def _commit(self, ops: list[Op]) -> None:
        async with self._db.write_session() as session:
            for op in ops:
                await op(session)
            await session.commit()


async def _nothing(_session: AsyncSession) -> None:
    return None


_Group = tuple[type[SQLModel], tuple[str, ...], bool]  # table, columns, or_ignore
_Shape = tuple[type[SQLModel], str, tuple[str, ...]]


def _bulk(
    inserts: dict[_Group, list[dict[str, Any]]],
    updates: dict[_Shape, list[dict[str, Any]]],
    db: Database,
) -> Op:
    """Core statements, not ORM objects: one executemany per table and shape."""

    async def op(session: AsyncSession) -> None:
        for (table, _columns, or_ignore), rows in inserts.items():
            sa_table = table.__table__  # type: ignore[attr-defined]
            statement: Any = insert(sa_table)
            if or_ignore:
                statement = db.insert(sa_table).on_conflict_do_nothing()
            await session.exec(statement, params=rows)
        for (table, key, columns), rows in updates.items():
            sa_table = table.__table__  # type: ignore[attr-defined]
            statement = (
                sa_table.update()
                .where(sa_table.c[key] == bindparam(f"_{key}"))
                .values({c: bindparam(f"_{c}") for c in columns if c != key})
            )
            await session.exec(statement, params=[{f"_{c}": v for c, v in r.items()} for r in rows])

    return op


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
