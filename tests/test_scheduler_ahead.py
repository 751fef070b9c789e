"""Runs claimed ahead of their due time: held until it, checked at it, never lost.

The crash tests kill a real scheduler process (`tests/support/scheduler_process.py`) after it
claimed a run ahead, before the run was due or before its hand-over was written; the
run must still happen, once.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from scheduler.plan import TriggerKind
from scheduler.service import Fire, Scheduler, Settings
from storage.clock import SystemClock
from storage.db import Database, sqlite_url
from storage.jobs import Claim, FireKind, JobStore
from storage.locks import AdvisoryLock
from storage.models import JobFire
from tests.support.scheduler_process import scheduler as scheduler_in
from tests.support.scheduling import job
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[1]


class Hooks:
    """Records hand-overs; a run lasts until the test ends it (`finish`)."""

    def __init__(self) -> None:
        self.fires: list[Fire] = []
        self.at: list[datetime] = []
        self.running: list[asyncio.Future[Any]] = []
        self.changed = asyncio.Event()

    def launch(self, fire: Fire) -> asyncio.Future[Any]:
        self.fires.append(fire)
        self.at.append(datetime.now(UTC))
        self.changed.set()
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.running.append(done)
        return done

    def finish(self, index: int) -> None:
        self.running[index].set_result(None)

    def finish_all(self) -> None:
        for done in self.running:
            if not done.done():
                done.set_result(None)

    async def launched(self, count: int, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while len(self.fires) < count:
                self.changed.clear()
                await self.changed.wait()

    def skipped(self, fire: Fire) -> None:
        raise AssertionError(f"nothing was missed, yet {fire.job.id} was skipped")

    def alert(self, text: str) -> None:
        raise AssertionError(f"unexpected alert: {text}")


def in_process(db: Database, hooks: Hooks, claim_ahead: float) -> Scheduler:
    settings = Settings(
        heartbeat_seconds=30,
        sync_seconds=30,
        takeover_seconds=0.2,
        claim_ahead=timedelta(seconds=claim_ahead),
    )
    return Scheduler(
        store=JobStore(db=db, clock=SystemClock()),
        lock=AdvisoryLock(db, 6),
        hooks=hooks,
        clock=SystemClock(),
        settings=settings,
    )


async def fires_of(db: Database, job_id: str) -> list[JobFire]:
    async with db.session() as session:
        query = select(JobFire).where(JobFire.job_id == job_id).order_by(col(JobFire.scheduled_for))
        return list((await session.exec(query)).all())


async def fire_row(db: Database, job_id: str, due: datetime, kind: FireKind) -> JobFire:
    """The claim of `job_id` due at `due`, once it has the kind `kind`."""

    async def found() -> JobFire | None:
        rows = await fires_of(db, job_id)
        return next((r for r in rows if r.scheduled_for == due and r.kind == kind), None)

    return await eventually(found, step=0.02)


# --- in one process ---------------------------------------------------------------------


async def test_the_overlap_rule_is_checked_at_the_due_instant_not_at_the_claim(
    data_dir: Path,
) -> None:
    made = datetime.now(UTC)
    hooks = Hooks()
    async with Database(sqlite_url(data_dir)) as db:
        await JobStore(db=db, clock=SystemClock()).add(
            job("slow", "1", kind=TriggerKind.INTERVAL, at=made)
        )
        async with in_process(db, hooks, claim_ahead=0.6):
            await hooks.launched(1)
            first = hooks.fires[0].claim.scheduled_for
            second, third = first + timedelta(seconds=1), first + timedelta(seconds=2)
            # Claimed while the first run still goes; it ends before the second is due.
            await fire_row(db, "slow", second, FireKind.AHEAD)
            assert datetime.now(UTC) < second
            hooks.finish(0)
            await hooks.launched(2)
            assert hooks.fires[1].claim.scheduled_for == second
            assert hooks.at[1] >= second  # held until its due instant
            # The second run still goes when the third is due: that one is skipped.
            busy = await fire_row(db, "slow", third, FireKind.BUSY)
            assert (busy.run_id, busy.missed) == (None, 1)
            assert [f.claim.scheduled_for for f in hooks.fires[:2]] == [first, second]
            hooks.finish_all()
        handed = await fire_row(db, "slow", second, FireKind.SCHEDULED)
        assert handed.run_id == hooks.fires[1].run_id


async def test_a_job_paused_after_its_run_was_claimed_does_not_run(data_dir: Path) -> None:
    made = datetime.now(UTC)
    due = made + timedelta(seconds=2)
    hooks = Hooks()
    async with Database(sqlite_url(data_dir)) as db:
        await JobStore(db=db, clock=SystemClock()).add(
            job("paused", "2", kind=TriggerKind.INTERVAL, at=made)
        )
        async with in_process(db, hooks, claim_ahead=1.5) as service:
            await fire_row(db, "paused", due, FireKind.AHEAD)
            await service.pause("paused")
            withdrawn = await fire_row(db, "paused", due, FireKind.WITHDRAWN)
        assert withdrawn.run_id is None
        assert hooks.fires == []


# --- a crash between the claim and the due time -----------------------------------------


@asynccontextmanager
async def scheduler_process(
    url: str, claim_ahead: float, lock_key: int, *options: str
) -> AsyncIterator[Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.scheduler_process",
        url,
        str(claim_ahead),
        str(lock_key),
        *options,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def crash(process: Any, printed: Sequence[str] = ()) -> list[str]:
    """Kill the process as a power cut would; return the runs it launched (also among
    the lines already read from it, `printed`)."""
    os.kill(process.pid, signal.SIGKILL)
    out, _ = await process.communicate()
    lines = [*printed, *out.decode().splitlines()]
    return [line for line in lines if line.startswith("launched")]


async def read_until(process: Any, prefix: str, timeout: float = 15) -> list[str]:
    """The lines the process prints, up to the first starting with `prefix`."""
    lines: list[str] = []
    async with asyncio.timeout(timeout):
        while not lines or not lines[-1].startswith(prefix):
            line = await process.stdout.readline()
            assert line, f"the process ended without printing {prefix!r}: {lines}"
            lines.append(line.decode().rstrip("\n"))
    return lines


@pytest.mark.slow
async def test_a_run_claimed_ahead_survives_a_crash_and_runs_once_after_restart(
    data_dir: Path,
) -> None:
    url = sqlite_url(data_dir)
    due = (datetime.now(UTC) + timedelta(seconds=6)).replace(microsecond=0)
    async with Database(url) as db:
        await JobStore(db=db, clock=SystemClock()).add(
            job("once", due.isoformat(), kind=TriggerKind.DATE, at=datetime.now(UTC))
        )
        async with scheduler_process(url, claim_ahead=5.5, lock_key=6) as process:
            claimed = await fire_row(db, "once", due, FireKind.AHEAD)
            assert await crash(process) == []  # killed before the run was due
        hooks = Hooks()
        async with in_process(db, hooks, claim_ahead=5.5):
            await hooks.launched(1)
            await fire_row(db, "once", due, FireKind.SCHEDULED)
        [fire] = hooks.fires
        assert (fire.job.id, fire.claim.scheduled_for, fire.run_id) == ("once", due, claimed.run_id)
        assert hooks.at[0] >= due  # taken over before it was due, and held until then
        again = Hooks()
        async with in_process(db, again, claim_ahead=5.5) as service:
            await asyncio.wait_for(service.ready.wait(), 5)
            await asyncio.sleep(0.3)
        assert again.fires == []  # handed over once, not at every start
        [row] = await fires_of(db, "once")
        assert row.claimed_by == service.holder


@pytest.mark.slow
async def test_a_new_leader_takes_over_runs_claimed_ahead_by_a_killed_one(pg_url: str) -> None:
    due = (datetime.now(UTC) + timedelta(seconds=7)).replace(microsecond=0)
    lock_key = 1_000_000 + secrets.randbelow(1_000_000)  # advisory locks span databases
    async with Database(pg_url) as db:
        store = JobStore(db=db, clock=SystemClock())
        await store.add(job("handed", due.isoformat(), kind=TriggerKind.DATE, at=datetime.now(UTC)))
        async with scheduler_process(pg_url, claim_ahead=6.5, lock_key=lock_key) as leader:
            claimed = await fire_row(db, "handed", due, FireKind.AHEAD)
            assert claimed.claimed_by.endswith(f":{leader.pid}")
            hooks = Hooks()
            async with scheduler_in(db, hooks, 6.5, lock_key) as standby:
                await asyncio.sleep(0.5)
                assert not standby.ready.is_set()  # the leader still leads
                assert await crash(leader) == []
                await hooks.launched(1)
                handed = await fire_row(db, "handed", due, FireKind.SCHEDULED)
        [fire] = hooks.fires
        assert (fire.claim.scheduled_for, fire.run_id) == (due, claimed.run_id)
        assert hooks.at[0] >= due
        assert handed.claimed_by == standby.holder
        assert len(await fires_of(db, "handed")) == 1


@pytest.mark.slow
async def test_a_run_due_when_its_leader_was_killed_before_writing_the_hand_over_runs_once(
    pg_url: str,
) -> None:
    due = (datetime.now(UTC) + timedelta(seconds=7)).replace(microsecond=0)
    lock_key = 1_000_000 + secrets.randbelow(1_000_000)
    async with Database(pg_url) as db:
        store = JobStore(db=db, clock=SystemClock())
        await store.add(job("handed", due.isoformat(), kind=TriggerKind.DATE, at=datetime.now(UTC)))
        # The leader's marks never reach the database: killed while the one of this run
        # is on its way (the window in which its run row is not written either).
        async with scheduler_process(pg_url, 6.5, lock_key, "stuck-marks") as leader:
            claimed = await fire_row(db, "handed", due, FireKind.AHEAD)
            hooks = Hooks()
            async with scheduler_in(db, hooks, 6.5, lock_key) as standby:
                printed = await read_until(leader, "marking handed")  # due, handed over
                by_leader = await crash(leader, printed)
                await hooks.launched(1)
                handed = await fire_row(db, "handed", due, FireKind.SCHEDULED)
        # Started once in all: not by the leader (its hand-over was never written), so
        # by the standby that took the row over.
        assert by_leader == []
        [fire] = hooks.fires
        assert (fire.claim.scheduled_for, fire.run_id) == (due, claimed.run_id)
        assert handed.claimed_by == standby.holder


async def test_a_hand_over_is_written_only_by_the_leader_that_still_holds_the_row(
    pg_url: str,
) -> None:
    """A leader that lost its lock late marks nothing the new leader took over, so it
    does not start that run; the new leader does."""
    due = datetime.now(UTC) + timedelta(seconds=30)
    async with Database(pg_url) as db:
        store = JobStore(db=db, clock=SystemClock())
        await store.add(job("both", due.isoformat(), kind=TriggerKind.DATE, at=datetime.now(UTC)))
        ahead = Claim("both", due, FireKind.AHEAD, None, "r1")
        assert await store.claim([ahead], "old:1") == [ahead]
        [taken] = await store.reown("new:2", datetime.now(UTC) - timedelta(minutes=1))
        assert taken.claimed_by == "new:2"
        handed = Claim("both", due, FireKind.SCHEDULED, None, "r1")
        assert await store.settle([handed], "old:1") == []
        assert await store.settle([handed], "new:2") == [handed]
        [row] = await fires_of(db, "both")
        assert (row.kind, row.claimed_by) == (FireKind.SCHEDULED, "new:2")
