"""APScheduler 3, doing one thing: noticing the moment jobs are due.

Its jobs live in the memory job store, rebuilt from our `jobs` table (APScheduler's
SQL store is synchronous and pickles state). One APScheduler job is a *timer*
shared by every job whose trigger is the same (same cron line and zone, same
interval from the same start) and whose next run is the same: a thousand jobs due at
09:00 are one timer, so APScheduler's synchronous pass over due jobs (per job: run
times, next fire time, `Job._modify`, the store's re-sort) runs once, not a thousand
times. The job function is the top-level `fire`, given the timer's id; a small
executor calls it in the event loop with the time the run was due, and the sink gets
the timer's jobs.

With a `lead`, every timer goes off that long before its jobs are due (their runs are
claimed ahead); the sink is still told the due time. The shift lives here only: what
goes in and comes out of the engine are due times.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_REMOVED, JobEvent
from apscheduler.executors.base import BaseExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

DueSink = Callable[[Sequence[str], datetime], None]


def fire(
    timer_id: str, *, sink: Callable[[str, datetime], None], due: datetime | None = None
) -> None:
    """The job function: pass the due run of `timer_id` on to be claimed."""
    sink(timer_id, due or datetime.now(UTC))


# APScheduler checks the job function's signature for every job it adds; computing it
# once makes adding timers about twice as fast (inspect returns __signature__).
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


class Early(BaseTrigger):  # type: ignore[misc]
    """Fires `lead` before `trigger` would: APScheduler sees these times, not the due ones."""

    def __init__(self, trigger: BaseTrigger, lead: timedelta) -> None:
        self.trigger = trigger
        self.lead = lead

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        previous = None if previous_fire_time is None else previous_fire_time + self.lead
        found: datetime | None = self.trigger.get_next_fire_time(previous, now + self.lead)
        return None if found is None else found - self.lead


@dataclass(eq=False, slots=True)
class _Timer:
    id: str
    key: str
    jobs: set[str] = field(default_factory=set)


class Engine:
    def __init__(self, sink: DueSink, *, lead: timedelta = timedelta(0)) -> None:
        self._sink = sink
        self._lead = lead
        self._timers: dict[str, _Timer] = {}  # APScheduler job id -> the timer
        self._keyed: dict[str, list[_Timer]] = {}  # trigger key -> its timers
        self._timer_of: dict[str, _Timer] = {}  # our job id -> its timer
        self._ids = itertools.count(1)
        self._aps = AsyncIOScheduler(
            executors={"default": HandOver()},
            jobstores={"default": MemoryJobStore()},
            # Several run times due at once (a stalled loop) are one run; lateness is
            # never a reason to skip here: downtime is judged by the service.
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
            timezone=UTC,
        )
        # A timer whose trigger has no next time is removed by APScheduler itself.
        self._aps.add_listener(self._removed, EVENT_JOB_REMOVED)

    def start(self) -> None:
        """Start paused: jobs can be loaded without waking the scheduler for each."""
        self._aps.start(paused=True)

    def resume(self) -> None:
        self._aps.resume()

    def put(self, job_id: str, key: str, trigger: BaseTrigger, next_run: datetime) -> None:
        """Schedule a job (again): on the timer of its trigger `key` due at `next_run`."""
        current = self._timer_of.get(job_id)
        if current is not None and current.key == key and self._next(current) == next_run:
            return
        self.drop(job_id)
        timer = self._timer_for(key, next_run) or self._new_timer(key, trigger, next_run)
        timer.jobs.add(job_id)
        self._timer_of[job_id] = timer

    def drop(self, job_id: str) -> None:
        timer = self._timer_of.pop(job_id, None)
        if timer is None:
            return
        timer.jobs.discard(job_id)
        if not timer.jobs:
            with contextlib.suppress(JobLookupError):
                self._aps.remove_job(timer.id)
            self._forget(timer)

    def next_run(self, job_id: str) -> datetime | None:
        timer = self._timer_of.get(job_id)
        return None if timer is None else self._next(timer)

    @property
    def timers(self) -> int:
        return len(self._timers)

    def __len__(self) -> int:
        return len(self._timer_of)

    async def stop(self) -> None:
        if self._aps.running:
            self._aps.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler shuts down in the next loop turn

    # --- timers ----------------------------------------------------------------------

    def _timer_for(self, key: str, next_run: datetime) -> _Timer | None:
        for timer in self._keyed.get(key, ()):
            if self._next(timer) == next_run:
                return timer
        return None

    def _new_timer(self, key: str, trigger: BaseTrigger, next_run: datetime) -> _Timer:
        timer = _Timer(f"t{next(self._ids)}", key)
        self._timers[timer.id] = timer
        self._keyed.setdefault(key, []).append(timer)
        self._aps.add_job(
            fire,
            trigger=Early(trigger, self._lead) if self._lead else trigger,
            args=(timer.id,),
            kwargs={"sink": self._fired},
            id=timer.id,
            name=key,
            next_run_time=next_run - self._lead,
        )
        return timer

    def _next(self, timer: _Timer) -> datetime | None:
        job = self._aps.get_job(timer.id)
        return None if job is None or job.next_run_time is None else job.next_run_time + self._lead

    def _fired(self, timer_id: str, early: datetime) -> None:
        timer = self._timers.get(timer_id)
        if timer is not None and timer.jobs:
            self._sink(tuple(timer.jobs), early + self._lead)

    def _removed(self, event: JobEvent) -> None:
        timer = self._timers.get(event.job_id)
        if timer is not None:
            for job_id in timer.jobs:
                self._timer_of.pop(job_id, None)
            self._forget(timer)

    def _forget(self, timer: _Timer) -> None:
        self._timers.pop(timer.id, None)
        siblings = self._keyed.get(timer.key, [])
        if timer in siblings:
            siblings.remove(timer)
        if not siblings:
            self._keyed.pop(timer.key, None)
