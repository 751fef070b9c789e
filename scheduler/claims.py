"""Due runs are claimed in batches: everything due in the same instant, one transaction.

Firing a thousand jobs at the same second must not mean a thousand commits; a batch
is taken as soon as the previous one is written (the group-commit idea of
`storage.writer`). A claim the database refuses was fired by someone else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from storage.jobs import Claim, JobStore

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
ATTEMPTS = 3


class Claims:
    def __init__(
        self,
        *,
        store: JobStore,
        holder: str,
        prepare: Callable[[str, datetime], Claim | None],
        claimed: Callable[[list[Claim]], None],
        failed: Callable[[list[Claim], str], None],
    ) -> None:
        self._store = store
        self._holder = holder
        self._prepare = prepare  # job id + due time -> the claim to make (None: job gone)
        self._claimed = claimed
        self._failed = failed
        self._pending: list[Claim] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, job_id: str, due: datetime) -> None:
        claim = self._prepare(job_id, due)
        if claim is not None:
            self._pending.append(claim)
            self._idle.clear()
            self._wake.set()

    async def settled(self) -> None:
        """Wait until every claim added so far is written (or given up)."""
        await self._idle.wait()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if batch:
                await self._write(batch)
            if not self._pending:
                self._idle.set()

    async def _write(self, batch: list[Claim]) -> None:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                won = await self._store.claim(batch, self._holder)
            except (SQLAlchemyError, OSError) as exc:
                log.warning(
                    "claiming %d due run(s) failed (attempt %d): %s", len(batch), attempt, exc
                )
                error = str(exc).splitlines()[0]
                await asyncio.sleep(RETRY_SECONDS * attempt)
                continue
            self._claimed(won)
            return
        self._failed(batch, error)
