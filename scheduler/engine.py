"""APScheduler 3, doing one thing: noticing the moment a job is due.

Its jobs live in the memory job store, rebuilt from our `jobs` table (APScheduler's
SQL store is synchronous and pickles state). The job function is the top-level
`fire`, given plain ids; a small executor calls it in the event loop with the time the
run was due, and `fire` hands both to the claims, which do the rest in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

DueSink = Callable[[str, datetime], None]


def fire(job_id: str, *, sink: DueSink, due: datetime | None = None) -> None:
    """The job function: pass the due run of `job_id` on to be claimed."""
    sink(job_id, due or datetime.now(UTC))


# APScheduler checks the job function's signature for every job it adds; computing it
# once makes loading 10,000 jobs about twice as fast (inspect returns __signature__).
fire.__signature__ = inspect.signature(fire)  # type: ignore[attr-defined]


class HandOver(BaseExecutor):  # type: ignore[misc]
    """Calls the job function at once, in the loop, telling it when the run was due.

    APScheduler's instance counting is left out: the hand-over ends at once, and the
    scheduler service itself knows which job still has a run going.
    """

    def submit_job(self, job: Any, run_times: list[datetime]) -> None:
        self._do_submit_job(job, run_times)

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        job.func(*job.args, due=run_times[-1], **job.kwargs)


class Engine:
    def __init__(self, sink: DueSink) -> None:
        self._sink = sink
        self._aps = AsyncIOScheduler(
            executors={"default": HandOver()},
            jobstores={"default": MemoryJobStore()},
            # Several run times due at once (a stalled loop) are one run; lateness is
            # never a reason to skip here: downtime is judged by the service.
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
            timezone=UTC,
        )

    def start(self) -> None:
        """Start paused: jobs can be loaded without waking the scheduler for each."""
        self._aps.start(paused=True)

    def resume(self) -> None:
        self._aps.resume()

    def put(self, job_id: str, trigger: BaseTrigger, next_run: datetime) -> None:
        self._aps.add_job(
            fire,
            trigger=trigger,
            args=(job_id,),
            kwargs={"sink": self._sink},
            id=job_id,
            name=job_id,
            next_run_time=next_run,
            replace_existing=True,
        )

    def drop(self, job_id: str) -> None:
        with contextlib.suppress(JobLookupError):
            self._aps.remove_job(job_id)

    def next_run(self, job_id: str) -> datetime | None:
        job = self._aps.get_job(job_id)
        return None if job is None else job.next_run_time

    def __len__(self) -> int:
        return len(self._aps.get_jobs())

    async def stop(self) -> None:
        if self._aps.running:
            self._aps.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler shuts down in the next loop turn
