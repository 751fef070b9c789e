"""Wait for a condition with a deadline: no fixed sleeps, no poll loop without an end.

`eventually` returns what the condition returned, so the test asserts on the value
itself (a failure shows a diff) rather than on a helper's hidden check.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


# Two signatures so mypy sees through an async condition to the value it awaits to; the
# result is never None (it is truthy), so a condition returning `X | None` gives an `X`.
@overload
async def eventually(
    condition: Callable[[], Awaitable[T | None]], timeout: float = ..., step: float = ...
) -> T: ...
@overload
async def eventually(
    condition: Callable[[], T | None], timeout: float = ..., step: float = ...
) -> T: ...
async def eventually(condition: Callable[[], Any], timeout: float = 10, step: float = 0.05) -> Any:
    """Call `condition` (sync or async) until it returns something truthy; return that.

    Raises `TimeoutError` naming the condition and its last value after `timeout` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() >= deadline:
            name = getattr(condition, "__qualname__", repr(condition))
            raise TimeoutError(f"{name} not true within {timeout} s; last value: {value!r}")
        await asyncio.sleep(step)
