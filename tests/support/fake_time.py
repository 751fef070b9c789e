"""A clock and a sleep that only move when told (for pacing and retry tests), and a call
that fails with the given errors before it succeeds."""

from __future__ import annotations

from collections.abc import Awaitable, Callable


class FakeTime:
    """`now()` and `sleep()` for code that takes them injected: sleeping only adds up."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def failing(*errors: Exception) -> Callable[[], Awaitable[str]]:
    """A call that raises `errors` one per call, then returns "sent"."""
    queue = list(errors)

    async def call() -> str:
        if queue:
            raise queue.pop(0)
        return "sent"

    return call
