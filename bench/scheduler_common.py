"""Shared by the scheduler benchmarks: a database of jobs, a recording hook, a stall meter."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scheduler.service import Fire, Scheduler, Settings
from storage.clock import SystemClock
from storage.db import Database, sqlite_url
from storage.jobs import JobStore
from storage.locks import AdvisoryLock
from storage.models import Job


class Recorder:
    """The hooks: notes when each run would start, and how late that was."""

    def __init__(self, expected: int) -> None:
        self.lateness: list[float] = []
        self.expected = expected
        self.all_in = asyncio.Event()

    def launch(self, fire: Fire) -> asyncio.Future[Any]:
        self.lateness.append(time.time() - fire.claim.scheduled_for.timestamp())
        if len(self.lateness) >= self.expected:
            self.all_in.set()
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def skipped(self, fire: Fire) -> None:
        pass

    def alert(self, text: str) -> None:
        print("alert:", text)


class StallMeter:
    """The longest time the event loop did not get round to a 1 ms timer."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="stall-meter")

    async def stop(self) -> float:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        return self.worst

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.worst = max(self.worst, now - last - 0.001)
            last = now


def job(job_id: str, spec: str, made: datetime, **fields: Any) -> Job:
    return Job(
        id=job_id,
        agent="echo",
        input="tick",
        trigger="interval",
        spec=spec,
        chat_id="bench:chat",
        created_by="bench",
        active_since=made,
        created_at=made,
        updated_at=made,
        **fields,
    )


async def database_with(jobs: Iterable[Job]) -> Database:
    path = Path(tempfile.mkdtemp(prefix="agentdeck-bench-"))
    db = await Database(sqlite_url(path)).__aenter__()
    async with db.session() as session:
        session.add_all(list(jobs))
        await session.commit()
    return db


def scheduler(db: Database, hooks: Recorder, **settings: Any) -> Scheduler:
    return Scheduler(
        store=JobStore(db=db, clock=SystemClock()),
        lock=AdvisoryLock(db, 1),
        hooks=hooks,
        clock=SystemClock(),
        settings=Settings(heartbeat_seconds=3600, **settings),
    )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def describe_ms(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"min {min(ms):.1f} ms, p50 {percentile(ms, 0.5):.1f} ms, "
        f"p99 {percentile(ms, 0.99):.1f} ms, "
        f"max {max(ms):.1f} ms, mean {statistics.fmean(ms):.1f} ms"
    )


def now() -> datetime:
    return datetime.now(UTC)
