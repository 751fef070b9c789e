"""Chat lanes: work runs in order within a chat and concurrently across chats.

A chat has two lanes: its agent work (keyed by the chat id) and its commands
(`commands_lane`), so that `/jobs` answers while an agent's run goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from storage.tasks import TaskSet


def commands_lane(chat: str) -> str:
    """The lane of a chat's commands that need no agent: in order, beside its agent runs."""
    return f"{chat} commands"


class ChatLanes:
    """Run work in order within a chat and concurrently across chats."""

    def __init__(self, tasks: TaskSet) -> None:
        self._tasks = tasks
        self._tails: dict[str, asyncio.Task[Any]] = {}

    def submit(self, chat: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        previous = self._tails.get(chat)
        task = self._tasks.spawn(self._after(previous, coro), name=f"lane:{chat}")
        self._tails[chat] = task
        task.add_done_callback(lambda done: self._release(chat, done))
        return task

    def busy(self, chat: str) -> bool:
        return chat in self._tails

    def _release(self, chat: str, task: asyncio.Task[Any]) -> None:
        if self._tails.get(chat) is task:
            del self._tails[chat]

    @staticmethod
    async def _after(previous: asyncio.Task[Any] | None, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            if previous is not None:
                await asyncio.wait([previous])
        except BaseException:
            coro.close()  # cancelled while queued: the work never starts, and says so cleanly
            raise
        await coro
