"""Each transport's link to its platform: up, or down since a moment and retried.

A transport whose platform cannot be reached or refuses our token (`TransportDown`)
is marked down by whoever noticed (the outbox, on a send). It is then probed with
growing pauses (`probe`: Slack `auth.test`, Telegram `getMe`) until it answers; in
between, its messages wait in the outbox instead of being tried one by one. The
other transports, the dispatcher and the scheduler go on as before. `/status` shows
the states.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from storage.clock import Clock
from storage.tasks import TaskSet

log = logging.getLogger(__name__)

RETRY_FIRST_SECONDS = 2.0
RETRY_MAX_SECONDS = 300.0

Probe = Callable[[str], Awaitable[None]]


class LinkState(StrEnum):
    UP = "up"
    RETRYING = "retrying"


@dataclass(frozen=True, slots=True)
class Link:
    name: str
    state: LinkState = LinkState.UP
    since: datetime | None = None  # down since
    last_error: str = ""
    attempts: int = 0  # probes that failed
    next_attempt: datetime | None = None


class TransportLinks:
    def __init__(
        self,
        names: Iterable[str],  # the deck's transports, each up to begin with
        *,
        clock: Clock,
        probe: Probe,
        on_up: Callable[[str], None] = lambda name: None,
        first: float | None = None,
        cap: float | None = None,
    ) -> None:
        self._clock = clock
        self._probe = probe
        self._on_up = on_up
        self._first = RETRY_FIRST_SECONDS if first is None else first
        self._cap = RETRY_MAX_SECONDS if cap is None else cap
        self._links = {name: Link(name) for name in names}
        self._tasks = TaskSet()

    async def __aenter__(self) -> TransportLinks:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._tasks.cancel_all()

    def is_up(self, name: str) -> bool:
        link = self._links.get(name)
        return link is None or link.state is LinkState.UP

    def up_names(self, names: list[str]) -> list[str]:
        return [name for name in names if self.is_up(name)]

    def all(self) -> list[Link]:
        return sorted(self._links.values(), key=lambda link: link.name)

    def down(self, name: str, error: str) -> None:
        """The platform failed us: keep the error, and start retrying unless already."""
        link = self._links.get(name, Link(name))
        if link.state is LinkState.RETRYING:
            self._links[name] = _with(link, last_error=error)
            return
        log.warning("%s is down (%s); retrying with backoff", name, error)
        self._links[name] = Link(name, LinkState.RETRYING, self._clock.now(), error)
        self._tasks.spawn(self._retry(name), name=f"link-retry:{name}")

    def pause(self, attempts: int) -> float:
        """Seconds before the next probe, after `attempts` failed ones: doubling, capped."""
        return float(min(self._first * 2**attempts, self._cap))

    async def _retry(self, name: str) -> None:
        while True:
            link = self._links[name]
            wait = self.pause(link.attempts)
            self._links[name] = _with(
                link, next_attempt=self._clock.now() + timedelta(seconds=wait)
            )
            await asyncio.sleep(wait)
            try:
                await self._probe(name)
            except Exception as exc:  # any failure is the link's state, shown in /status
                link = self._links[name]
                self._links[name] = _with(
                    link, attempts=link.attempts + 1, last_error=_describe(exc)
                )
                log.info("%s still down: %s", name, _describe(exc))
                continue
            log.warning("%s is back after %d failed probe(s)", name, self._links[name].attempts)
            self._links[name] = Link(name)
            self._on_up(name)
            return


def _with(link: Link, **changes: object) -> Link:
    return replace(link, **changes)  # type: ignore[arg-type]


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
