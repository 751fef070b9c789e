"""What an agent remembers of a chat: a window of recent turns, and a running summary.

The window is `memory_turns` exchanges (the agent's own, else `[deck] memory_turns`).
Agents that can summarise (llm agents) let the window grow by half again, then fold
everything but the last `memory_turns` exchanges into the summary with one model
call: the prompt stays bounded and the conversation keeps its thread. Other agents
keep the plain window.
"""

from __future__ import annotations

import logging

from roster.agent import Agent, Turn
from roster.errors import RosterError
from storage.memory import Memory

log = logging.getLogger(__name__)


class Conversation:
    def __init__(self, memory: Memory, *, default_turns: int) -> None:
        self._memory = memory
        self._default_turns = default_turns

    def window(self, agent: Agent) -> int:
        """Exchanges kept word for word."""
        turns = agent.spec.memory_turns
        return self._default_turns if turns is None else turns

    async def history(self, agent: Agent, chat: str) -> tuple[Turn, ...]:
        if not agent.reads_history:
            return ()
        window = self.window(agent)
        shown = _ceiling(window) if agent.summarises else window
        rows = await self._memory.recent_turns(chat, agent.spec.memory_key, shown)
        return tuple(Turn(row.role, row.content) for row in rows)

    def record(self, agent: Agent, chat: str, question: str, answer: str) -> None:
        key = agent.spec.memory_key
        if key != agent.name:  # a shared memory says who answered
            answer = f"[{agent.name}] {answer}"
        self._memory.remember_turn(chat, key, "user", question)
        self._memory.remember_turn(chat, key, "assistant", answer)

    async def fold(self, agent: Agent, chat: str) -> bool:
        """Summarise older turns once the window has overflowed; True when it did."""
        window = self.window(agent)
        if window <= 0 or not agent.summarises:
            return False
        key = agent.spec.memory_key
        if await self._memory.unsummarised_count(chat, key) <= 2 * _ceiling(window):
            return False  # the common case, answered without reading the database
        previous, rows = await self._memory.unsummarised(chat, key)
        if len(rows) <= 2 * _ceiling(window):
            return False
        older = rows[: -2 * window]
        turns = [Turn(row.role, row.content) for row in older]
        try:
            summary = await agent.summarise(previous, turns)
        except RosterError as exc:
            log.warning("could not summarise %s's memory in %s (kept as is): %s", key, chat, exc)
            return False
        if summary is None:
            return False
        self._memory.fold(chat, key, len(older), summary)
        return True


def _ceiling(window: int) -> int:
    """How far the window may grow before it is folded: half again, at least one more."""
    return window + max(1, window // 2) if window > 0 else 0
