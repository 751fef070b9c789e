"""Runs as the database has them, once their ends are written."""

from __future__ import annotations

import asyncio

from sqlmodel import col, select

from bot.deck import Deck
from storage.models import Run


async def finished_runs(deck: Deck, count: int) -> list[Run]:
    """The runs, oldest first, once `count` of them have their end written (it follows
    the answer)."""
    async with asyncio.timeout(10):
        while True:
            await deck.runner.flush()
            async with deck.db.session() as session:
                runs = list((await session.exec(select(Run).order_by(col(Run.started_at)))).all())
            if sum(r.finished_at is not None for r in runs) >= count:
                return runs
            await asyncio.sleep(0.05)
