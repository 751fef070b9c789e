"""Stores Slack updates in the inbox in batches, and tells each one whether it is new.

Events that arrive together share one transaction: SQLite takes one writer at a
time, and a burst of mentions stored one by one queues behind itself past Slack's
3 s. A key seen twice in one batch is new once.
"""

from __future__ import annotations

import asyncio

from bot.errors import TransportError
from storage.inbox import Inbox
from storage.tasks import TaskSet

BATCH_ROWS = 500

Pending = tuple[str, dict[str, object], "asyncio.Future[bool]"]


class Intake:
    def __init__(self, inbox: Inbox, tasks: TaskSet) -> None:
        self._inbox = inbox
        self._tasks = tasks
        self._pending: list[Pending] = []
        self._flushing = False

    async def is_new(self, key: str, payload: dict[str, object]) -> bool:
        """Store the update unless its key is known; True when it was not."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((key, payload, future))
        if not self._flushing:
            self._flushing = True
            self._tasks.spawn(self._flush(), name="slack-intake")
        return await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = self._pending[:BATCH_ROWS]
                del self._pending[:BATCH_ROWS]
                await self._store(batch)
        finally:
            self._flushing = False

    async def _store(self, batch: list[Pending]) -> None:
        try:
            fresh = await self._inbox.accept([(key, payload) for key, payload, _ in batch])
        except Exception as exc:
            for _, _, future in batch:
                future.set_exception(TransportError(f"could not store a Slack update: {exc}"))
            return
        for key, _, future in batch:
            future.set_result(key in fresh)
            fresh.discard(key)
