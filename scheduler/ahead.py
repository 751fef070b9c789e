"""Runs claimed ahead of their due time, held until it comes (Quartz: "acquire ahead").

Claiming a thousand runs due at one instant takes tens of milliseconds of database
time, more on a busy machine; done after the instant, every run would start that
late. So the leader claims them shortly before (the claim is durable and exactly
once, as any claim) and keeps them here; at the due instant one timer call hands all
of that instant's runs over, with no database work in between.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Generic, TypeVar

from storage.clock import Clock

T = TypeVar("T")


class Holding(Generic[T]):
    """Claimed runs waiting for their due instant; the runs of one instant go in one call."""

    def __init__(
        self,
        *,
        clock: Clock,
        due: Callable[[T], datetime],
        release: Callable[[list[T]], None],
    ) -> None:
        self._clock = clock
        self._due_of = due
        self._release = release
        self._waiting: dict[datetime, list[T]] = {}
        self._timers: dict[datetime, asyncio.TimerHandle] = {}

    def add(self, runs: Iterable[T]) -> None:
        """Hold each run until its due instant (one already due goes in the next turn)."""
        loop = asyncio.get_running_loop()
        now = self._clock.now()
        for run in runs:
            due = self._due_of(run)
            waiting = self._waiting.get(due)
            if waiting is None:
                waiting = self._waiting[due] = []
                delay = max(0.0, (due - now).total_seconds())
                self._timers[due] = loop.call_later(delay, self._due, due)
            waiting.append(run)

    def drop(self) -> int:
        """Forget every held run (stepping down: the next leader takes them over)."""
        for timer in self._timers.values():
            timer.cancel()
        dropped = len(self)
        self._timers.clear()
        self._waiting.clear()
        return dropped

    def __len__(self) -> int:
        return sum(len(runs) for runs in self._waiting.values())

    def _due(self, due: datetime) -> None:
        self._timers.pop(due, None)
        runs = self._waiting.pop(due, [])
        if runs:
            self._release(runs)
