"""Long loops that share the event loop: yield every few milliseconds of work."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from typing import TypeVar

T = TypeVar("T")

SLICE_SECONDS = 0.004


async def paced(items: Iterable[T], slice_seconds: float = SLICE_SECONDS) -> AsyncIterator[T]:
    """Iterate, handing the loop back whenever a slice of CPU time is used up."""
    started = time.perf_counter()
    for item in items:
        yield item
        if time.perf_counter() - started > slice_seconds:
            await asyncio.sleep(0)
            started = time.perf_counter()
