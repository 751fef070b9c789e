"""Process heartbeats in storage: what a live process leaves alone, what it takes over."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from sqlmodel import col, select

from storage.clock import FakeClock
from storage.db import Database, sqlite_url
from storage.inbox import Inbox
from storage.models import InboxItem, ProcessBeat, Run
from storage.processes import Processes
from storage.runs import RunStore
from storage.writer import WriteBehind

STALE = timedelta(seconds=30)


def _process(db: Database, clock: FakeClock, name: str) -> Processes:
    return Processes(db=db, clock=clock, me=name, stale_after=STALE)


async def _add_running_run(
    db: Database, clock: FakeClock, owner: str | None, update_key: str | None = None
) -> str:
    run = Run(id=uuid.uuid4().hex, agent="a", chat_id="c", user_id="u", started_at=clock.now())
    run.owner, run.update_key = owner, update_key
    async with db.session() as session:
        session.add(run)
        await session.commit()
    return run.id


async def _interrupt(db: Database, processes: Processes, clock: FakeClock) -> list[str]:
    """Mark what gone processes left running; the ids marked (each by one taker)."""
    runs = RunStore(db)
    left = [run.id for run in await runs.left_running(processes)]
    return [run.id for run in await runs.interrupt(left, processes, clock.now(), lambda _: [])]


async def test_on_postgresql_only_a_silent_process_is_taken_over(pg_url: str) -> None:
    clock = FakeClock()
    async with Database(pg_url) as db, WriteBehind(db) as writer:
        first, second = _process(db, clock, "h:1:a"), _process(db, clock, "h:2:b")
        await first.beat()
        await second.beat()
        mine = await _add_running_run(db, clock, first.me, "telegram:2")
        legacy = await _add_running_run(db, clock, None)  # from before runs had owners
        inbox = Inbox(db=db, writer=writer, clock=clock, processes=first)
        updates = [("telegram:1", {"text": "hi"}), ("telegram:2", {"text": "started"})]
        assert await inbox.accept(updates) == {"telegram:1", "telegram:2"}
        takeover = Inbox(db=db, writer=writer, clock=clock, processes=second)

        assert await _interrupt(db, second, clock) == [legacy]
        assert await takeover.take_over() == []  # the first process still beats

        for _ in range(4):  # the second process beats on, the first does not
            clock.advance(STALE / 3)
            await second.beat()
        assert await _interrupt(db, second, clock) == [mine]
        # The update that started a run is not handled again: it is marked handled.
        assert [item.key for item in await takeover.take_over()] == ["telegram:1"]
        await writer.flush()
        assert await _unhandled(db) == ["telegram:1"]
        assert await _interrupt(db, second, clock) == []  # once
        assert await takeover.take_over() == []  # now the second process's own

        await second.forget_dead()
        assert await _beating(db) == ["h:2:b"]
        await second.leave()  # a clean stop
        assert await _beating(db) == []


async def test_after_an_outage_nobody_is_taken_over_before_it_could_beat(pg_url: str) -> None:
    """A database restart longer than the staleness window: every heartbeat is stale,
    also the live processes'. The first one back waits until the others could beat."""
    clock = FakeClock()
    async with Database(pg_url) as db, WriteBehind(db) as writer:
        first, second = _process(db, clock, "h:1:a"), _process(db, clock, "h:2:b")
        await first.beat()
        await second.beat()
        await _add_running_run(db, clock, first.me)
        await Inbox(db=db, writer=writer, clock=clock, processes=first).accept([("t:1", {})])
        takeover = Inbox(db=db, writer=writer, clock=clock, processes=second)

        clock.advance(STALE * 2)  # neither could write its heartbeat meanwhile
        await second.beat()  # back first
        assert await _interrupt(db, second, clock) == []
        assert await takeover.take_over() == []
        clock.advance(STALE / 3)
        await first.beat()  # alive after all
        for _ in range(4):
            clock.advance(STALE / 3)
            await first.beat()
            await second.beat()
            assert await _interrupt(db, second, clock) == []
            assert await takeover.take_over() == []


async def _unhandled(db: Database) -> list[str]:
    async with db.session() as session:
        query = select(InboxItem.key).where(col(InboxItem.handled_at).is_(None))
        return list((await session.exec(query)).all())


async def _beating(db: Database) -> list[str]:
    async with db.session() as session:
        return [row.id for row in (await session.exec(select(ProcessBeat))).all()]


async def test_on_sqlite_every_other_owner_is_gone(data_dir: Path) -> None:
    clock = FakeClock()
    async with Database(sqlite_url(data_dir)) as db:
        before, now = _process(db, clock, "h:1:a"), _process(db, clock, "h:1:b")
        await before.beat()  # a restart a moment after a crash: the heartbeat is fresh
        await now.beat()
        lost = await _add_running_run(db, clock, before.me)
        await _add_running_run(db, clock, now.me)
        assert await _interrupt(db, now, clock) == [lost]
