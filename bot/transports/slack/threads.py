"""A follow-up in a thread goes to the agent named last in that thread.

The names are kept by `storage.threads` (the database), not in this process: behind
a load balancer the next message of a thread may reach another process.
"""

from __future__ import annotations

import re
from typing import Protocol

_ADDRESSED = re.compile(r"^(?:/ask\s+|@)([a-z][a-z0-9_-]{0,39})(?:\s|$)")


class ThreadAgentStore(Protocol):
    async def remember(self, thread: str, agent: str) -> None: ...

    async def agent(self, thread: str) -> str | None: ...


class ThreadMemory:
    def __init__(self, store: ThreadAgentStore) -> None:
        self._store = store

    async def route(self, thread: str | None, text: str, *, opens: bool = False) -> str:
        """Remember an agent named in a thread; address the thread's agent when none is.

        A message that `opens` its thread (a mention outside any thread) finds no agent
        named there before it, so the database is not asked.
        """
        if thread is None or not text:
            return text
        named = _ADDRESSED.match(text)
        if named:
            await self._store.remember(thread, named.group(1))
            return text
        if opens or text.startswith(("/", "@")):
            return text
        agent = await self._store.agent(thread)
        return text if agent is None else f"@{agent} {text}"
