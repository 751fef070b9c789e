"""The scheduler's background tasks: named, held in a set, failures logged, cancelled together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


def spawn(coro: Coroutine[Any, Any, None], name: str, owner: set[asyncio.Task[None]]) -> None:
    task = asyncio.create_task(coro, name=name)
    owner.add(task)
    task.add_done_callback(lambda done: _finished(done, owner))


async def cancel(tasks: set[asyncio.Task[None]]) -> None:
    pending = list(tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def _finished(task: asyncio.Task[None], owner: set[asyncio.Task[None]]) -> None:
    owner.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("scheduler task %s failed", task.get_name(), exc_info=task.exception())
