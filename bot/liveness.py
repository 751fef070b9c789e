"""This process's heartbeat, and taking over what processes that stopped beating left.

Several processes share one PostgreSQL database, so "the process died" can no longer
mean "every run still marked running": only a process whose heartbeat is older than
`[deck] process_stale_seconds` is gone. At start and at every beat, a live process
stops what that process's running runs left running on this host, marks those runs
interrupted and reports each with a Run again button (`bot.runs.interrupted`), and handles
its unhandled updates that started no run; the database hands each row to one taker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType

from bot.deck import Deck
from bot.delivery.outbox import ADMIN_SUBJECT
from bot.runs import interrupted
from bot.runs.interrupted import Cut
from bot.types import Incoming, Outgoing
from storage.inbox import Inbox
from storage.processes import Processes

log = logging.getLogger(__name__)

Handle = Callable[[Incoming], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Leftovers:
    """What processes that are gone left behind, now taken over by this one."""

    runs: list[Cut]
    updates: int

    def __bool__(self) -> bool:
        return bool(self.runs or self.updates)


class Liveness:
    """`async with`: beats until exit, then removes this process's heartbeat row."""

    def __init__(self, *, deck: Deck, processes: Processes, inbox: Inbox, handle: Handle) -> None:
        self._deck = deck
        self._processes = processes
        self._inbox = inbox
        self._handle = handle
        self._every = deck.config.deck.process_heartbeat_seconds
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Liveness:
        self._task = asyncio.create_task(self._beating(), name="process-heartbeat")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(Exception):  # a stale row would only delay nothing
            await self._processes.leave()

    async def take_over(self) -> Leftovers:
        """Report the runs of processes that are gone; handle their updates."""
        runs = await interrupted.take_over(
            self._processes,
            db=self._deck.db,
            clock=self._deck.clock,
            roster=self._deck.roster,
            audit=self._deck.audit,
        )
        await interrupted.report(runs, postman=self._deck.postman, approvals=self._deck.approvals)
        updates = await self._inbox.take_over()
        for item in updates:
            await self._handle(Incoming.from_json(item.payload))
        return Leftovers(runs, len(updates))

    async def _beating(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await self._processes.beat()
                leftovers = await self.take_over()
                await self._processes.forget_dead()
            except Exception:
                log.exception("heartbeat or take-over failed; trying again at the next beat")
                continue
            if leftovers:
                await self._tell_admin(leftovers)

    async def _tell_admin(self, leftovers: Leftovers) -> None:
        note = (
            f"Another agentdeck process stopped (no heartbeat for"
            f" {self._processes.stale_after.total_seconds():g} s). Interrupted runs:"
            f" {interrupted.describe(leftovers.runs)}; updates handled here: {leftovers.updates}."
        )
        log.warning(note)
        admin = self._deck.config.deck.admin_chat
        if admin and self._deck.postman.knows(admin):
            key = f"takeover:{self._processes.me}:{self._deck.clock.now().isoformat()}"
            with contextlib.suppress(Exception):
                await self._deck.postman.keep(
                    key, Outgoing.plain(admin, note), subject=ADMIN_SUBJECT
                )
