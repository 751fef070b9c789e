"""Flood limits and retries for Bot API calls.

Telegram allows about 30 messages a second overall and 20 a minute into one group;
past that it answers 429 with `retry_after`. `Pace` keeps us under the rates (a burst
up to the rate passes at once, then calls are spaced); `retrying` honours 429s and
retries network errors and server errors (5xx) a bounded number of times with backoff.
Time is injected so tests run without sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from telegram.error import BadRequest, NetworkError, RetryAfter

from bot.transports.telegram.request import NotSent, ServerFailed

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

NETWORK_ATTEMPTS = 4
BACKOFF_SECONDS = 0.25
MAX_RETRY_AFTER_SECONDS = 120.0
FLOOD_ATTEMPTS = 5


class Pace:
    """A rate with a burst allowance (GCRA): `delay()` reserves a slot, says how long to wait.

    `per_second <= 0` switches the limit off (a self-hosted API server, benchmarks).
    """

    __slots__ = ("_burst", "_interval", "_next", "_now")

    def __init__(
        self, per_second: float, *, burst: int, now: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = 1.0 / per_second if per_second > 0 else 0.0
        self._burst = max(burst - 1, 0) * self._interval
        self._next = 0.0  # the theoretical time of the next call
        self._now = now

    def delay(self) -> float:
        if not self._interval:
            return 0.0
        now = self._now()
        due = max(self._next, now)
        self._next = due + self._interval
        return max(due - self._burst - now, 0.0)


class Pacer:
    """The overall pace and one pace per group chat."""

    def __init__(
        self,
        *,
        per_second: float,
        group_per_minute: float,
        now: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._overall = Pace(per_second, burst=max(int(per_second), 1), now=now)
        self._group_rate = group_per_minute / 60.0
        self._group_burst = max(int(group_per_minute), 1)
        self._groups: dict[str, Pace] = {}
        self._now = now
        self._sleep = sleep

    async def wait(self, chat_id: str, *, new_message: bool) -> None:
        """Wait for a slot; a new message into a group also takes one from the group's rate."""
        delay = self._overall.delay()
        if new_message and chat_id.startswith("-") and self._group_rate > 0:
            delay = max(delay, self._group(chat_id).delay())
        if delay > 0:
            await self._sleep(delay)

    def _group(self, chat_id: str) -> Pace:
        pace = self._groups.get(chat_id)
        if pace is None:
            pace = Pace(self._group_rate, burst=self._group_burst, now=self._now)
            self._groups[chat_id] = pace
        return pace


def retry_after_seconds(exc: RetryAfter) -> float:
    value = exc.retry_after  # a timedelta with PTB_TIMEDELTA (set at start), else seconds
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


async def retrying(
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    sleep: Sleep = asyncio.sleep,
    resend: bool = True,
    patience: float = MAX_RETRY_AFTER_SECONDS,
) -> T:
    """Run a Bot API call, waiting out 429s and retrying network errors with backoff.

    `resend=False` (a new message): only errors that prove the call was not carried out
    (no connection, a server error answered) are retried; after a timeout or a dropped
    answer the message may be in the chat already. A 429 asking for a longer wait than
    `patience` is raised, for the caller to try again later.
    """
    network_failures = 0
    floods = 0
    while True:
        try:
            return await call()
        except RetryAfter as exc:
            floods += 1
            wait = retry_after_seconds(exc)
            if floods >= FLOOD_ATTEMPTS or wait > patience:
                raise
            log.warning("Telegram asks to slow down (%s): waiting %.1f s", what, wait)
            await sleep(wait)
        except BadRequest:
            raise  # the request itself is wrong; sending it again changes nothing
        except NetworkError as exc:
            if not resend and not isinstance(exc, NotSent | ServerFailed):
                raise
            network_failures += 1
            if network_failures >= NETWORK_ATTEMPTS:
                raise
            wait = BACKOFF_SECONDS * 2 ** (network_failures - 1)
            log.warning("%s failed (%s); retrying in %.2f s", what, exc, wait)
            await sleep(wait)
