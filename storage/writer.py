"""Group commit: many small writes from many conversations, one transaction per batch.

At hundreds of messages a second a commit per row would make the database the
bottleneck; queued writes are applied in order, in one transaction, as soon as the
previous batch is done. `write()` waits for the commit (use it where durability
matters, like the inbox before an update is acknowledged); `submit()` does not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.db import Database

log = logging.getLogger(__name__)

Op = Callable[[AsyncSession], Awaitable[None]]


class WriteBehind:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._ops: list[Op] = []
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

    async def write(self, op: Op) -> None:
        await self.submit(op)

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed."""
        last = self._batch_done or self._inflight
        if last is not None:
            await asyncio.shield(last)

    async def _run(self) -> None:
        while not (self._stopping and not self._ops):
            await self._wake.wait()
            self._wake.clear()
            if self._ops:
                ops, done = self._ops, self._batch_done
                self._ops, self._batch_done, self._inflight = [], None, done
                await self._apply(ops)
                self._inflight = None
                if done is not None and not done.done():
                    done.set_result(None)

    async def _apply(self, ops: list[Op]) -> None:
        try:
            await self._commit(ops)
        except SQLAlchemyError:
            # One bad write must not take the rest of the batch with it.
            for op in ops:
                try:
                    await self._commit([op])
                except SQLAlchemyError:
                    log.exception("a queued database write failed and was dropped")

    async def _commit(self, ops: list[Op]) -> None:
        async with self._db.session() as session:
            for op in ops:
                await op(session)
            await session.commit()
