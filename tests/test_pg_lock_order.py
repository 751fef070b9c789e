"""Two write-behind queues on one PostgreSQL database (team mode) never deadlock.

Both processes of a team write the same chat's memory (turns, then a fold that
replaces the oldest turns by a summary) and append to the one audit chain. Their
batches must take row and advisory locks in one order, or PostgreSQL kills one
transaction with "deadlock detected" (which the queue used to log as the database
being unreachable). Here two real `Database`/`WriteBehind` pairs do that at once.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import func
from sqlmodel import select

from storage.audit import AuditLog
from storage.clock import SystemClock
from storage.db import Database
from storage.memory import SUMMARY, Memory
from storage.models import AuditEvent, Message
from storage.writer import WriteBehind

ROUNDS = 60
CHATS = ("tg:1", "tg:2", "tg:3")


async def _process(name: str, db: Database, start: asyncio.Event) -> None:
    async with WriteBehind(db) as writer:
        clock = SystemClock()
        memory = Memory(db=db, writer=writer, clock=clock)
        audit = AuditLog(db=db, writer=writer, clock=clock)
        await start.wait()
        for n in range(ROUNDS):
            for chat in CHATS:
                memory.remember_turn(chat, "echo", "user", f"{name} {n}")
            # One process records before folding, the other after: opposite orders.
            if name == "a":
                audit.record(name, "run.finished", f"{name}-{n}")
            for chat in CHATS:
                memory.fold(chat, "echo", 1, f"summary by {name} {n}")
            if name == "b":
                audit.record(name, "run.finished", f"{name}-{n}")
            await writer.flush()


@pytest.mark.slow
async def test_two_writers_on_one_database_take_locks_in_one_order(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="storage")
    async with Database(pg_url) as first, Database(pg_url) as second:
        start = asyncio.Event()
        tasks = [
            asyncio.create_task(_process("a", first, start)),
            asyncio.create_task(_process("b", second, start)),
        ]
        await asyncio.sleep(0.1)
        start.set()
        await asyncio.gather(*tasks)
        async with first.session() as session:
            events = (await session.exec(select(func.count()).select_from(AuditEvent))).one()
            turns = (
                await session.exec(
                    select(func.count()).select_from(Message).where(Message.role != SUMMARY)
                )
            ).one()
        chain = await AuditLog(db=first, writer=WriteBehind(first), clock=SystemClock()).verify()
    deadlocks = [r.getMessage() for r in caplog.records if "deadlock" in r.getMessage()]
    unreachable = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert deadlocks == []
    assert unreachable == []
    assert events == 2 * ROUNDS  # every event written once
    assert chain.broken is None
    assert chain.rows == 2 * ROUNDS
    assert turns == 0  # each fold replaced one turn, each turn (written once) was folded once
