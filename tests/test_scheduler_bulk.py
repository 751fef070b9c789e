"""The scheduler at scale: claims written in bulk, timers shared by identical triggers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from scheduler.service import Fire, Scheduler, Settings
from storage.clock import FakeClock, SystemClock
from storage.db import Database, sqlite_url
from storage.jobs import Claim, FireKind, JobStore
from storage.locks import AdvisoryLock
from storage.models import JobFire, JobState
from tests.support.scheduling import job
from tests.support.waiting import eventually

T0 = datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC)  # microseconds must survive


async def test_bulk_claims_are_won_once_and_move_jobs_forward(db: Database) -> None:
    store = JobStore(db=db, clock=FakeClock(T0))
    for name in ("a", "b", "c", "d"):
        await store.add(job(name, "60", at=T0))
    due, later = T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)
    first = [
        Claim("a", due, FireKind.SCHEDULED, later, "run-a"),
        Claim("b", due, FireKind.SCHEDULED, None, "run-b"),  # the last run: b is done
        Claim("c", due, FireKind.MANUAL, None, "run-c"),  # /run: the schedule stays
        Claim("d", later, FireKind.CATCHUP, later + timedelta(minutes=1), "run-d", missed=2),
    ]
    assert await store.claim(first, "one") == first
    again = [
        Claim("a", due, FireKind.SCHEDULED, later, "run-a2"),  # taken: lost
        Claim("d", due, FireKind.BUSY, later, missed=1),  # older than d's last run
    ]
    assert await store.claim(again, "two") == [again[1]]

    jobs = {j.id: j for j in await store.jobs(["a", "b", "c", "d"])}
    assert (jobs["a"].last_run_at, jobs["a"].next_run_at, jobs["a"].state) == (due, later, "active")
    assert (jobs["b"].last_run_at, jobs["b"].next_run_at, jobs["b"].state) == (due, None, "done")
    assert (jobs["c"].last_run_at, jobs["c"].state) == (None, "active")
    assert jobs["d"].last_run_at == later  # never moved backwards by the older claim
    async with db.session() as session:
        query = select(JobFire).order_by(col(JobFire.job_id), col(JobFire.scheduled_for))
        rows = (await session.exec(query)).all()
    stored = [(r.job_id, r.scheduled_for, r.kind, r.missed, r.run_id, r.claimed_by) for r in rows]
    assert stored == [
        ("a", due, "scheduled", 0, "run-a", "one"),
        ("b", due, "scheduled", 0, "run-b", "one"),
        ("c", due, "manual", 0, "run-c", "one"),
        ("d", due, "busy", 1, None, "two"),
        ("d", later, "catchup", 2, "run-d", "one"),
    ]
    assert {r.claimed_at for r in rows} == {T0}


async def test_a_thousand_claims_race_and_each_is_won_once(db: Database) -> None:
    store = JobStore(db=db, clock=FakeClock(T0))
    async with db.session() as session:
        session.add_all([job(f"j{i:04}", "60", at=T0) for i in range(1000)])
        await session.commit()
    due = T0 + timedelta(minutes=1)

    def batch(holder: str) -> list[Claim]:
        return [
            Claim(f"j{i:04}", due, FireKind.SCHEDULED, due, f"{holder}{i}") for i in range(1000)
        ]

    one, two = await asyncio.gather(store.claim(batch("x"), "x"), store.claim(batch("y"), "y"))
    assert sorted(c.job_id for c in one + two) == [f"j{i:04}" for i in range(1000)]


class Hooks:
    def __init__(self) -> None:
        self.fires: list[Fire] = []

    def launch(self, fire: Fire) -> asyncio.Future[Any]:
        self.fires.append(fire)
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def skipped(self, fire: Fire) -> None:
        raise AssertionError(f"nothing was missed, yet {fire.job.id} was skipped")

    def alert(self, text: str) -> None:
        raise AssertionError(f"unexpected alert: {text}")


def scheduler(db: Database, hooks: Hooks) -> Scheduler:
    settings = Settings(heartbeat_seconds=30, sync_seconds=30, takeover_seconds=0.2)
    store = JobStore(db=db, clock=SystemClock())
    return Scheduler(
        store=store, lock=AdvisoryLock(db, 5), hooks=hooks, clock=SystemClock(), settings=settings
    )


async def test_jobs_on_one_trigger_share_a_timer_and_each_fires(data_dir: Path) -> None:
    now = datetime.now(UTC)
    async with Database(sqlite_url(data_dir)) as db:
        store = JobStore(db=db, clock=SystemClock())
        async with db.session() as session:
            session.add_all([job(f"s{i:02}", "1", at=now) for i in range(50)])
            session.add(job("own", "1", at=now + timedelta(milliseconds=300)))
            await session.commit()
        hooks = Hooks()
        async with scheduler(db, hooks) as service:
            await asyncio.wait_for(service.ready.wait(), 5)
            engine = service.engine()
            assert engine is not None
            assert (len(engine), engine.timers) == (51, 2)
            await eventually(lambda: len({f.job.id for f in hooks.fires}) >= 51, timeout=5)
            await service.pause("s07")
            assert (len(engine), engine.timers) == (50, 2)
        fired = [(f.job.id, f.claim.scheduled_for) for f in hooks.fires]
        assert len(fired) == len(set(fired))  # no run twice
        shared = {f.claim.scheduled_for for f in hooks.fires if f.job.id != "own"}
        assert all((t - now) % timedelta(seconds=1) == timedelta(0) for t in shared)
        stored = await store.get("s07")
        assert stored is not None
        assert stored.state == JobState.PAUSED


async def test_changes_by_another_process_are_picked_up_among_many(data_dir: Path) -> None:
    now = datetime.now(UTC)
    async with Database(sqlite_url(data_dir)) as db:
        async with db.session() as session:
            session.add_all([job(f"m{i:04}", "3600", at=now) for i in range(300)])
            await session.commit()
        async with scheduler(db, Hooks()) as service:
            await asyncio.wait_for(service.ready.wait(), 5)
            engine = service.engine()
            assert engine is not None
            other = JobStore(db=db, clock=SystemClock())  # as another process would
            assert await other.set_state("m0042", JobState.PAUSED, allowed={JobState.ACTIVE})
            await service.sync()
            assert engine.next_run("m0042") is None
            assert engine.next_run("m0043") == now + timedelta(hours=1)
            assert await other.set_state("m0042", JobState.ACTIVE, allowed={JobState.PAUSED})
            await service.sync()
            assert engine.next_run("m0042") is not None
            assert len(engine) == 300
