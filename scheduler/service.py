"""The scheduler service: one leader fires the jobs; every process can change them.

Lifecycle, as an async context manager: a background election asks for the
scheduler lock (a PostgreSQL advisory lock; always granted on SQLite). The winner
loads the active jobs from the `jobs` table, makes up for runs missed while nobody
was leading (one coalesced run per job, or a note when they are older than the grace
time), takes over the runs an earlier leader claimed ahead but never handed over
(`scheduler.recovery`), then lets APScheduler fire (`scheduler.firing`). Changes made
in this process apply at once; changes made by other processes are picked up by
polling `jobs.updated_at`.

A process that is stopping (`halt`) steps down for good: it stands for no election
again while its running work drains, and keeps the lock until it exits, so no other
process starts a job whose last run still goes here. The runs due meanwhile are the
next leader's catch-up, as for any time nobody led.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from scheduler.engine import Engine
from scheduler.errors import JobFromConfig, JobNotFound, JobNotRunnable
from scheduler.firing import Firing
from scheduler.hooks import Fire, JobHooks
from scheduler.loaded import LoadedJobs, plan_of
from scheduler.pacing import long_lived
from scheduler.plan import missed, next_after
from scheduler.recovery import Recovery
from scheduler.settings import SYNC_MARGIN, Settings
from scheduler.watch import Watch
from storage.clock import Clock
from storage.jobs import Claim, FireKind, JobStore
from storage.locks import AdvisoryLock
from storage.models import Job, JobState
from storage.tasks import TaskSet

# Other modules import these from here.
__all__ = [
    "LOCK_KEY",
    "Fire",
    "JobHooks",
    "Scheduler",
    "SchedulerRole",
    "Settings",
    "Status",
    "plan_of",
    "process_name",
]

log = logging.getLogger(__name__)

LOCK_KEY = 7_402_008  # the scheduler's advisory lock (the audit log uses 7_402_001)


class SchedulerRole(StrEnum):
    STOPPED = "stopped"
    STANDBY = "standby"  # another process leads; this one waits to take over
    STOPPING = "stopping"  # the process is stopping: it never leads again
    LOADING = "loading"  # leading, catching up on missed runs before firing
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class Status:
    role: SchedulerRole
    holder: str | None
    since: datetime | None
    heartbeat_at: datetime | None
    loaded: int
    next_runs: list[Job] = field(default_factory=list)


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Scheduler:
    def __init__(
        self,
        *,
        store: JobStore,
        lock: AdvisoryLock,
        hooks: JobHooks,
        clock: Clock,
        settings: Settings,
    ) -> None:
        self.store = store
        self.settings = settings
        self.holder = process_name()
        self.role = SchedulerRole.STOPPED
        self.ready = asyncio.Event()  # set once leading and firing
        self._lock = lock
        self._hooks = hooks
        self._clock = clock
        self._loaded = LoadedJobs()
        self._firing = Firing(
            store=store,
            holder=self.holder,
            hooks=hooks,
            clock=clock,
            settings=settings,
            loaded=self._loaded,
        )
        self._recovery = Recovery(self._firing)
        self._since: datetime | None = None
        self._watermark: datetime | None = None
        self._tasks = TaskSet()
        self._leading_tasks = TaskSet()
        self._watch = Watch(
            store=store, clock=clock, alert=hooks.alert, settings=settings, holder=self.holder
        )

    async def __aenter__(self) -> Scheduler:
        self.role = SchedulerRole.STANDBY
        self._tasks.spawn(self._elections(), name="scheduler-election")
        self._tasks.spawn(self._watch.run(self._leading_since), name="scheduler-watch")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.halt()
        await self._tasks.cancel_all()
        await self._lock.release()
        self.role = SchedulerRole.STOPPED

    def _leading_since(self) -> datetime | None:
        return self._since if self.role is SchedulerRole.LEADER else None

    async def halt(self) -> None:
        """Stop firing for good (before the deck drains its work); safe to call twice.

        No election follows: what falls due from now on is left to the next leader.
        """
        leading = self.role in (SchedulerRole.LEADER, SchedulerRole.LOADING)
        await self._tasks.cancel_all()  # the elections (and the heartbeat) end here
        await self._step_down()
        self.role = SchedulerRole.STOPPING
        if leading:
            log.info("stopping: the scheduler fires nothing more here; the next leader catches up")

    # --- leading ---------------------------------------------------------------------

    async def _elections(self) -> None:
        while True:
            try:
                await self._elect()
            except Exception:
                log.exception("scheduler election failed; trying again")
            await asyncio.sleep(self.settings.takeover_seconds)

    async def _elect(self) -> None:
        if self.role in (SchedulerRole.LEADER, SchedulerRole.LOADING):
            if not await self._lock.still_held():
                self._hooks.alert(
                    f"The scheduler lost its lock in {self.holder}; another process may take over."
                )
                await self._step_down()
            return
        if await self._lock.try_acquire():
            await self._take_over()

    async def _take_over(self) -> None:
        self.role = SchedulerRole.LOADING
        self._since = self._clock.now()
        self._watermark = self._since
        engine = self._firing.start(self._leading_tasks)
        with long_lived():
            later = await self._recovery.load(await self.store.active())
            engine.resume()
            self.role = SchedulerRole.LEADER
            self.ready.set()
            await self.store.beat("scheduler", self.holder, self._since)
            await self._recovery.load_later(later)
        self._leading_tasks.spawn(self._syncing(), name="scheduler-sync")
        log.info(
            "this process (%s) runs the scheduler: %d job(s)", self.holder, len(self._loaded.jobs)
        )

    async def _step_down(self) -> None:
        if self.role not in (SchedulerRole.LEADER, SchedulerRole.LOADING):
            return
        self.role = SchedulerRole.STANDBY
        self.ready.clear()
        await self._firing.stop()
        await self._leading_tasks.cancel_all()
        self._firing.forget()
        self._loaded.clear()

    # --- picking up changes ----------------------------------------------------------

    async def _syncing(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sync_seconds)
            try:
                await self.sync()
            except Exception:
                log.exception("picking up job changes failed; trying again")

    async def sync(self) -> None:
        """Apply job changes made since the last look (by any process)."""
        assert self._watermark is not None
        changed: list[str] = []
        for job_id, version, updated_at in await self.store.versions_since(
            self._watermark - SYNC_MARGIN
        ):
            self._watermark = max(self._watermark, updated_at)
            if self._loaded.versions.get(job_id) != version:
                changed.append(job_id)
        for job in await self.store.jobs(changed) if changed else []:
            await self._apply(job)

    async def _apply(self, job: Job) -> None:
        engine = self._firing.engine
        if engine is None or self.role is not SchedulerRole.LEADER:
            return
        self._loaded.versions[job.id] = job.version
        if job.state != JobState.ACTIVE:
            self._loaded.jobs.pop(job.id, None)
            engine.drop(job.id)
            return
        loaded = self._loaded.remember(job)
        due = missed(
            loaded.trigger, last_run=job.last_run_at, since=job.active_since, now=self._clock.now()
        )
        upcoming = due.next_run
        if due.count and due.latest is not None:
            upcoming = due.latest  # due while it was being changed: fire it now
        if upcoming is None:
            engine.drop(job.id)
            return
        engine.put(job.id, loaded.key, loaded.trigger, upcoming)
        await self.store.set_next_runs([(job.id, upcoming)])

    # --- what chat commands call -----------------------------------------------------

    async def create(self, job: Job) -> Job:
        """Store a new job and schedule it (here when leading, else by the leader)."""
        plan = plan_of(job)
        job.next_run_at = next_after(plan.trigger(job.created_at), job.created_at)
        await self.store.add(job)
        await self._apply(job)
        return job

    async def get(self, job_id: str) -> Job:
        job = await self.store.get(job_id)
        if job is None or job.state == JobState.REMOVED:
            raise JobNotFound(job_id)
        return job

    async def pause(self, job_id: str) -> Job:
        return await self._move(job_id, JobState.PAUSED, {JobState.ACTIVE})

    async def resume(self, job_id: str) -> Job:
        return await self._move(job_id, JobState.ACTIVE, {JobState.PAUSED})

    async def remove(self, job_id: str) -> Job:
        job = await self.get(job_id)
        if job.source == "config":
            raise JobFromConfig(job_id)
        allowed = {JobState.ACTIVE, JobState.PAUSED, JobState.DONE}
        return await self._move(job_id, JobState.REMOVED, allowed)

    async def _move(self, job_id: str, state: JobState, allowed: set[JobState]) -> Job:
        job = await self.get(job_id)
        if job.state not in allowed:
            raise JobNotRunnable(f"Job {job_id} is {job.state}; that cannot become {state}.")
        if not await self.store.set_state(job_id, state, allowed=allowed):
            raise JobNotRunnable(f"Job {job_id} changed meanwhile; look again with /jobs {job_id}.")
        changed = await self.get(job_id) if state is not JobState.REMOVED else job
        if state is JobState.REMOVED:
            changed.state = JobState.REMOVED
        await self._apply(changed)
        return changed

    async def run_now(self, job_id: str) -> Fire:
        """Run a job at once, outside its schedule (which does not move)."""
        job = await self.get(job_id)
        now = self._clock.now()
        claim = Claim(job.id, now, FireKind.MANUAL, job.next_run_at, uuid.uuid4().hex)
        won = await self.store.claim([claim], self.holder)
        if not won:
            raise JobNotRunnable(f"Job {job_id} was just started; try again in a second.")
        fire = Fire(job, claim)
        self._firing.launch(fire)
        return fire

    async def status(self) -> Status:
        beat = await self.store.heartbeat("scheduler")
        return Status(
            role=self.role,
            holder=beat.holder if beat else None,
            since=beat.since if beat else None,
            heartbeat_at=beat.heartbeat_at if beat else None,
            loaded=len(self._loaded.jobs),
            next_runs=await self.store.next_runs(3),
        )

    def engine(self) -> Engine | None:
        return self._firing.engine
