"""A chat's memory window as a new process reads it from the database, on SQLite and on
PostgreSQL: the newest summary first, then the newest turns oldest first, the count of
turns not folded, and nothing of another chat or memory key."""

from __future__ import annotations

from datetime import UTC, datetime

from storage.clock import FakeClock
from storage.db import Database
from storage.memory import CACHED_TURNS, SUMMARY, Memory, StoredTurn
from storage.writer import WriteBehind

CLOCK = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))


async def read_fresh(db: Database, chat: str, agent: str, turns: int) -> list[StoredTurn]:
    """The window as a process that has read nothing yet sees it."""
    async with WriteBehind(db) as writer:
        return list(
            await Memory(db=db, writer=writer, clock=CLOCK).recent_turns(chat, agent, turns)
        )


async def test_a_window_is_the_summary_then_the_newest_turns_in_order(db: Database) -> None:
    async with WriteBehind(db) as writer:
        memory = Memory(db=db, writer=writer, clock=CLOCK)
        for n in range(6):
            memory.remember_turn("t:1", "bot", "user" if n % 2 == 0 else "assistant", f"turn {n}")
        memory.remember_turn("t:1", "mate", "user", "another key")
        memory.remember_turn("t:2", "bot", "user", "another chat")
        memory.fold("t:1", "bot", 2, "the first two, folded")
        memory.fold("t:1", "bot", 0, "folded again, newer")
        await writer.flush()
    window = await read_fresh(db, "t:1", "bot", 2)
    assert window == [
        StoredTurn(SUMMARY, "folded again, newer"),
        StoredTurn("user", "turn 2"),
        StoredTurn("assistant", "turn 3"),
        StoredTurn("user", "turn 4"),
        StoredTurn("assistant", "turn 5"),
    ]
    assert await read_fresh(db, "t:2", "bot", 5) == [StoredTurn("user", "another chat")]
    assert await read_fresh(db, "t:3", "bot", 5) == []


async def test_a_long_window_keeps_the_newest_turns_and_counts_them_all(db: Database) -> None:
    total = CACHED_TURNS + 7
    async with WriteBehind(db) as writer:
        memory = Memory(db=db, writer=writer, clock=CLOCK)
        for n in range(total):
            memory.remember_turn("t:1", "bot", "user", f"turn {n}")
        await writer.flush()
    async with WriteBehind(db) as writer:
        memory = Memory(db=db, writer=writer, clock=CLOCK)
        window = await memory.recent_turns("t:1", "bot", CACHED_TURNS)
        assert [turn.content for turn in window] == [f"turn {n}" for n in range(7, total)]
        assert await memory.unsummarised_count("t:1", "bot") == total
