"""The heartbeat, and the alarm when due runs stop firing.

The leader writes a heartbeat and looks for active jobs whose next run is older than
the stall threshold: APScheduler stopped, claims failing, a stuck loop that came
back. A standby process looks at the leader's heartbeat instead: a leader that holds
the lock but stopped beating is stuck, and only someone else can say so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from storage.clock import Clock
from storage.jobs import JobStore

if TYPE_CHECKING:
    from scheduler.settings import Settings

log = logging.getLogger(__name__)

PRUNE_EVERY = timedelta(hours=1)
KEEP_FIRES = timedelta(days=7)  # far longer than any claim could be retried


class Watch:
    def __init__(
        self,
        *,
        store: JobStore,
        clock: Clock,
        alert: Callable[[str], None],
        settings: Settings,
        holder: str,
    ) -> None:
        self._store = store
        self._clock = clock
        self._alert = alert
        self._settings = settings
        self._holder = holder
        self._raised: set[str] = set()  # alarms already told, until they clear
        self._pruned_at: datetime | None = None

    async def run(self, leading_since: Callable[[], datetime | None]) -> None:
        while True:
            await asyncio.sleep(self._settings.heartbeat_seconds)
            try:
                await self.check(leading_since())
            except Exception:
                log.exception("the scheduler's heartbeat failed; trying again")

    async def check(self, leading_since: datetime | None) -> None:
        if leading_since is not None:
            await self._store.beat("scheduler", self._holder, leading_since)
            await self._check_firing()
            await self._prune()
        else:
            self._clear("firing")
            await self._check_leader()

    async def _check_firing(self) -> None:
        now = self._clock.now()
        late = await self._store.overdue(now - self._settings.stall)
        if not late:
            self._clear("firing")
            return
        oldest = late[0].next_run_at
        assert oldest is not None
        listed = ", ".join(job.id for job in late)
        self._raise(
            "firing",
            f"Scheduled jobs have stopped firing: {listed} were due "
            f"{ago(now - oldest)} ago and have not run. /status shows the scheduler.",
        )

    async def _check_leader(self) -> None:
        beat = await self._store.heartbeat("scheduler")
        if beat is None or self._clock.now() - beat.heartbeat_at <= self._settings.silent_after:
            self._clear("leader")
            return
        age = ago(self._clock.now() - beat.heartbeat_at)
        self._raise(
            "leader",
            f"The scheduler in {beat.holder} has not written a heartbeat for {age}; "
            "jobs may not be firing.",
        )

    async def _prune(self) -> None:
        now = self._clock.now()
        if self._pruned_at is None or now - self._pruned_at > PRUNE_EVERY:
            self._pruned_at = now
            await self._store.prune_fires(now - KEEP_FIRES)

    def _raise(self, alarm: str, text: str) -> None:
        if alarm not in self._raised:
            self._raised.add(alarm)
            log.warning("%s", text)
            self._alert(text)

    def _clear(self, alarm: str) -> None:
        if alarm in self._raised:
            self._raised.discard(alarm)
            self._alert("Scheduled jobs are firing again.")


def ago(delta: timedelta) -> str:
    """A span as people say it: seconds, then minutes, then hours."""
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
