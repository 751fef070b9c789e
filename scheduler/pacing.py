"""Long work that shares the event loop: yield every few milliseconds, and keep the
garbage collector from walking long-lived state over and over while it is built."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
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


@contextmanager
def long_lived() -> Iterator[None]:
    """Build state that lives as long as the process, then exempt it from collections.

    A full collection walks every tracked object and cannot yield: with 10,000 jobs
    loaded (about ten tracked objects each, on top of the ~100,000 of the libraries)
    each one held the loop for 100-150 ms, and building them set off six. While the
    state is built only reference counting frees memory; then `gc.freeze()` moves
    everything alive to the permanent generation, which later collections skip.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # No collection first: it would walk everything just built (measured ~90 ms, and
        # it found no cyclic garbage to free, which freezing would otherwise keep).
        gc.freeze()
        if enabled:
            gc.enable()
