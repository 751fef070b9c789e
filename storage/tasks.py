"""Background tasks with owners: named, held, errors reported, awaited on stop.

In `storage`, the lowest layer, because every layer starts tasks: the bot, the scheduler
and the storage writer all hold theirs in a TaskSet.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskSet:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("task %s failed", task.get_name(), exc_info=exc)

    async def drain(self) -> None:
        """Wait until no task is left, including tasks spawned while waiting."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel_all(self) -> None:
        self.cancel()
        await self.drain()

    def cancel(self) -> None:
        """Ask every task to stop, without waiting for it."""
        for task in list(self._tasks):
            task.cancel()

    def names(self) -> list[str]:
        return sorted(task.get_name() for task in self._tasks)

    async def settle(self, seconds: float, *, unless: asyncio.Event | None = None) -> bool:
        """Wait up to `seconds` (or until `unless` is set) for no task to be left; whether none is.

        Unlike a timeout around `drain`, giving up cancels nothing: `asyncio.gather` would
        cancel every task it waited on.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        cut = asyncio.create_task((unless or asyncio.Event()).wait(), name="settle-cut-short")
        try:
            while self._tasks and not cut.done() and (left := deadline - loop.time()) > 0:
                await asyncio.wait(
                    [*self._tasks, cut], timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
        finally:
            cut.cancel()
            await asyncio.gather(cut, return_exceptions=True)
        return not self._tasks
