"""Due runs are claimed in batches: what is due together, a few hundred per transaction.

Firing a thousand jobs at the same second must not mean a thousand commits; a batch
is taken as soon as the previous one is written (the group-commit idea of
`storage.writer`). A long queue is cut into chunks so the first runs start while
the rest are still being written, and the loop gets a turn between chunks. A claim
the database refuses was fired by someone else. The same queue writes what became of
runs claimed ahead (`JobStore.settle`), batched the same way. An unreachable or full
database is waited out (`storage.faults`): a run starts late rather than never.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from storage.db import DATABASE_ERRORS
from storage.faults import Backoff, Fault, classify, first_line
from storage.jobs import Claim

log = logging.getLogger(__name__)

RETRY_SECONDS = 0.5
CHUNK = 250


class Claims:
    def __init__(
        self,
        *,
        write: Callable[[list[Claim]], Awaitable[list[Claim]]],
        claimed: Callable[[list[Claim]], None],
        failed: Callable[[list[Claim], str], None],
        chunk: int = CHUNK,
    ) -> None:
        self._write_batch = write  # returns the claims it won
        self._claimed = claimed
        self._failed = failed
        self._chunk = chunk
        self._pending: list[Claim] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, claims: Sequence[Claim]) -> None:
        if claims:
            self._pending.extend(claims)
            self._idle.clear()
            self._wake.set()

    async def settled(self) -> None:
        """Wait until every claim added so far is written (or given up)."""
        await self._idle.wait()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[: self._chunk]
                del self._pending[: self._chunk]
                await self._write(batch)
            self._idle.set()

    async def _write(self, batch: list[Claim]) -> None:
        """Write a batch; an unreachable or full database is waited out (the runs start
        late rather than never), a refused write fails the batch at once."""
        backoff: Backoff | None = None
        while True:
            try:
                won = await self._write_batch(batch)
            except DATABASE_ERRORS as exc:
                if classify(exc) is Fault.PERMANENT:
                    log.error("writing %d due run(s) was refused: %s", len(batch), exc)
                    self._failed(batch, first_line(exc))
                    return
                backoff = backoff or Backoff(first=RETRY_SECONDS)
                if backoff.should_log():
                    log.warning("writing %d due run(s) waits for the database: %s", len(batch), exc)
                await backoff.sleep()
                continue
            self._claimed(won)
            return
