"""The thread → agent table forgets threads nobody used for a month, on both databases."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, select

from storage.clock import FakeClock
from storage.db import Database
from storage.models import ThreadAgent
from storage.threads import KEEP_UNUSED, PRUNE_EVERY, ThreadAgents
from storage.writer import WriteBehind


async def stored(db: Database) -> list[str]:
    async with db.session() as session:
        query = select(ThreadAgent.thread_id).order_by(col(ThreadAgent.thread_id))
        return list((await session.exec(query)).all())


async def test_unused_threads_are_pruned_at_most_hourly(db: Database) -> None:
    clock = FakeClock()
    async with WriteBehind(db) as writer:
        await _pruned_at_most_hourly(db, writer, clock)


async def _pruned_at_most_hourly(db: Database, writer: WriteBehind, clock: FakeClock) -> None:
    threads = ThreadAgents(db=db, writer=writer, clock=clock)
    await threads.remember("old", "ops")
    await threads.remember("followed-up", "ops")
    clock.advance(KEEP_UNUSED - timedelta(days=1))
    assert await threads.agent("followed-up") == "ops"  # a read keeps the row in use
    clock.advance(timedelta(days=2))
    await threads.remember("new", "dev")  # the first write pruned; an hour has passed since
    assert await stored(db) == ["followed-up", "new"]
    assert await threads.agent("old") is None


async def test_a_process_prunes_at_most_once_an_hour(db: Database) -> None:
    async with WriteBehind(db) as writer:
        await _prunes_once_an_hour(db, writer)


async def _prunes_once_an_hour(db: Database, writer: WriteBehind) -> None:
    start = FakeClock()
    await ThreadAgents(db=db, writer=writer, clock=start).remember("x", "ops")
    clock = FakeClock(start.now() + KEEP_UNUSED - timedelta(minutes=10))
    threads = ThreadAgents(db=db, writer=writer, clock=clock)
    await threads.remember("a", "ops")  # the first write prunes: x is not stale yet
    clock.advance(timedelta(minutes=20))
    await threads.remember("b", "ops")  # x is stale now, but the last prune was 20 min ago
    assert await stored(db) == ["a", "b", "x"]
    clock.advance(PRUNE_EVERY)
    await threads.remember("c", "ops")
    assert await stored(db) == ["a", "b", "c"]
