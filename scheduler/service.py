"""The scheduler service: one leader fires the jobs; every process can change them.

Lifecycle, as an async context manager: a background election asks for the
scheduler lock (a PostgreSQL advisory lock; always granted on SQLite). The winner
loads the active jobs from the `jobs` table, makes up for runs missed while nobody
was leading (one coalesced run per job, or a note when they are older than the grace
time), takes over the runs an earlier leader claimed ahead but never handed over,
then lets APScheduler fire. Changes made in this process apply at once; changes made
by other processes are picked up by polling `jobs.updated_at`.

Firing: a run is claimed `claim_ahead` before it is due and held (`scheduler.ahead`);
at the due instant its claim row is marked with what becomes of it: handed over, or
not because its job changed meanwhile or its previous run still goes (checked then,
not at the claim). A run handed over starts once that mark is written (one batched
UPDATE): a row left `ahead` by a leader that died is then one whose run never
started, so the next leader can start it without running anything twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from apscheduler.triggers.base import BaseTrigger

from scheduler.ahead import Holding
from scheduler.claims import Claims
from scheduler.engine import Engine
from scheduler.errors import JobFromConfig, JobNotFound, JobNotRunnable
from scheduler.pacing import long_lived, paced
from scheduler.plan import Missed, Plan, TriggerKind, missed, next_after
from scheduler.watch import Watch
from storage.clock import Clock
from storage.jobs import Claim, FireKind, JobStore
from storage.locks import AdvisoryLock
from storage.models import Job, JobState

log = logging.getLogger(__name__)

LOCK_KEY = 7_402_008  # the scheduler's advisory lock (the audit log uses 7_402_001)
SYNC_MARGIN = timedelta(seconds=30)  # re-read recent changes: clocks of processes differ
CLAIM_CHUNK = 500
# Runs wait for their mark to start, so marks go in larger statements than claims: for
# 1,000 runs due at once, p99 lateness ~30 ms in chunks of 500, ~60-90 ms in chunks of 250.
MARK_CHUNK = 500
# Jobs due within this are handed to APScheduler before firing starts; the rest after.
LOAD_AHEAD = timedelta(minutes=1)


class Role(StrEnum):
    STOPPED = "stopped"
    STANDBY = "standby"  # another process leads; this one waits to take over
    LOADING = "loading"  # leading, catching up on missed runs before firing
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class Settings:
    timezone: str = "UTC"
    grace: timedelta = timedelta(hours=1)  # older missed runs are reported, not run
    heartbeat_seconds: float = 30.0
    stall: timedelta = timedelta(minutes=2)  # a due run this late means firing stopped
    sync_seconds: float = 2.0
    takeover_seconds: float = 5.0
    # Runs are claimed this long before they are due, so that they start on time.
    claim_ahead: timedelta = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Fire:
    """A claimed firing, handed to the bot: the job as it was, and the claim."""

    job: Job
    claim: Claim

    @property
    def run_id(self) -> str | None:
        return self.claim.run_id


class JobHooks(Protocol):
    """What the bot does for the scheduler; none of these may block."""

    def launch(self, fire: Fire) -> asyncio.Future[Any]:
        """Start the job's run (its id is `fire.run_id`); the future ends with the run."""
        ...

    def skipped(self, fire: Fire) -> None:
        """Tell the job's chat that missed runs were too old to run."""
        ...

    def alert(self, text: str) -> None:
        """Tell the admin chat."""
        ...


@dataclass(slots=True)
class _Loaded:
    job: Job
    plan: Plan
    trigger: BaseTrigger
    key: str  # equal for jobs whose triggers fire at the same times


@dataclass(frozen=True, slots=True)
class _Entry:
    next_run: datetime
    job_id: str
    loaded: _Loaded


@dataclass(frozen=True, slots=True)
class Status:
    role: Role
    holder: str | None
    since: datetime | None
    heartbeat_at: datetime | None
    loaded: int
    next_runs: list[Job] = field(default_factory=list)


def plan_of(job: Job) -> Plan:
    return Plan(TriggerKind(job.trigger), job.spec, job.timezone)


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
        self.role = Role.STOPPED
        self.ready = asyncio.Event()  # set once leading and firing
        self._lock = lock
        self._hooks = hooks
        self._clock = clock
        self._engine: Engine | None = None
        self._claims: Claims | None = None
        self._marks: Claims | None = None  # what became of runs claimed ahead
        self._holding: Holding[Fire] | None = None
        self._handing: dict[tuple[str, float], Fire] = {}  # due, to start once marked
        self._loaded: dict[str, _Loaded] = {}
        self._versions: dict[str, int] = {}  # the version of each job last scheduled
        self._in_flight: set[str] = set()
        self._since: datetime | None = None
        self._watermark: datetime | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._leading_tasks: set[asyncio.Task[None]] = set()
        self._watch = Watch(
            store=store, clock=clock, alert=hooks.alert, settings=settings, holder=self.holder
        )

    async def __aenter__(self) -> Scheduler:
        self.role = Role.STANDBY
        self._spawn(self._elections(), "scheduler-election", self._tasks)
        self._spawn(self._watch.run(self._leading_since), "scheduler-watch", self._tasks)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.halt()
        await _cancel(self._tasks)
        await self._lock.release()
        self.role = Role.STOPPED

    def _leading_since(self) -> datetime | None:
        return self._since if self.role is Role.LEADER else None

    async def halt(self) -> None:
        """Stop firing (before the deck drains its work); safe to call twice."""
        await self._step_down()

    # --- leading ---------------------------------------------------------------------

    async def _elections(self) -> None:
        while True:
            try:
                await self._elect()
            except Exception:
                log.exception("scheduler election failed; trying again")
            await asyncio.sleep(self.settings.takeover_seconds)

    async def _elect(self) -> None:
        if self.role in (Role.LEADER, Role.LOADING):
            if not await self._lock.still_held():
                self._hooks.alert(
                    f"The scheduler lost its lock in {self.holder}; another process may take over."
                )
                await self._step_down()
            return
        if await self._lock.try_acquire():
            await self._take_over()

    async def _take_over(self) -> None:
        self.role = Role.LOADING
        self._since = self._clock.now()
        self._watermark = self._since
        engine = Engine(self._due, lead=self.settings.claim_ahead)
        claims = Claims(
            write=lambda batch: self.store.claim(batch, self.holder),
            claimed=self._on_claimed,
            failed=self._on_claim_failed,
        )
        marks = Claims(
            write=self._mark,
            claimed=self._on_marked,
            failed=self._on_mark_failed,
            chunk=MARK_CHUNK,
        )
        self._engine, self._claims, self._marks = engine, claims, marks
        self._holding = Holding(clock=self._clock, due=_due_of, release=self._release)
        self._spawn(claims.run(), "scheduler-claims", self._leading_tasks)
        self._spawn(marks.run(), "scheduler-marks", self._leading_tasks)
        engine.start()
        with long_lived():
            later = await self._load(await self.store.active())
            engine.resume()
            self.role = Role.LEADER
            self.ready.set()
            await self.store.beat("scheduler", self.holder, self._since)
            await self._load_later(later)
        self._spawn(self._syncing(), "scheduler-sync", self._leading_tasks)
        log.info("this process (%s) runs the scheduler: %d job(s)", self.holder, len(self._loaded))

    async def _step_down(self) -> None:
        if self.role not in (Role.LEADER, Role.LOADING):
            return
        self.role = Role.STANDBY
        self.ready.clear()
        if self._engine is not None:
            await self._engine.stop()
        if self._claims is not None:
            try:
                async with asyncio.timeout(5):
                    await self._claims.settled()
            except TimeoutError:
                log.warning("due runs still being claimed at stop; they will count as missed")
        if self._holding is not None and (held := self._holding.drop()):
            log.info("%d run(s) claimed ahead are left to the next leader", held)
        if self._marks is not None:
            try:
                async with asyncio.timeout(5):
                    await self._marks.settled()
            except TimeoutError:
                log.warning("due runs are not all marked; those left did not start")
        self._unhand(list(self._handing.values()))  # left `ahead`: the next leader's to start
        await _cancel(self._leading_tasks)
        self._engine, self._claims, self._marks, self._holding = None, None, None, None
        self._loaded.clear()
        self._versions.clear()

    async def _load(self, jobs: list[Job]) -> list[_Entry]:
        """Make up for what fell due while nobody led, and schedule what is due soon.

        Returns the jobs due later, to be scheduled once firing has started: with
        thousands of jobs, handing them all to APScheduler takes seconds.
        """
        assert self._engine is not None
        now = self._clock.now()
        catchups: list[Claim] = []
        entries: list[_Entry] = []
        next_runs: list[tuple[str, datetime | None]] = []
        async for job in paced(jobs):
            loaded = self._remember(job)
            due = missed(loaded.trigger, last_run=job.last_run_at, since=job.active_since, now=now)
            if due.count:
                catchups.append(self._catchup(job, due, now))
            if due.next_run is not None:
                entries.append(_Entry(due.next_run, job.id, loaded))
            if due.next_run != job.next_run_at and not due.count:
                next_runs.append((job.id, due.next_run))
        for start in range(0, len(catchups), CLAIM_CHUNK):
            chunk = catchups[start : start + CLAIM_CHUNK]
            self._on_claimed(await self.store.claim(chunk, self.holder))
        await self._recover(now)
        for start in range(0, len(next_runs), CLAIM_CHUNK):
            await self.store.set_next_runs(next_runs[start : start + CLAIM_CHUNK])
        entries.sort(key=lambda entry: entry.next_run)
        horizon = self._clock.now() + LOAD_AHEAD
        soon = [entry for entry in entries if entry.next_run <= horizon]
        await self._load_later(soon)
        return entries[len(soon) :]

    async def _load_later(self, entries: list[_Entry]) -> None:
        async for entry in paced(entries):
            # A job changed from chat meanwhile was scheduled (or dropped) by that change.
            if self._engine is not None and self._loaded.get(entry.job_id) is entry.loaded:
                loaded = entry.loaded
                self._engine.put(entry.job_id, loaded.key, loaded.trigger, entry.next_run)

    def _catchup(self, job: Job, due: Missed, now: datetime) -> Claim:
        assert due.latest is not None
        if now - due.latest > self.settings.grace:
            return Claim(job.id, due.latest, FireKind.SKIPPED, due.next_run, missed=due.count)
        run_id = uuid.uuid4().hex
        return Claim(job.id, due.latest, FireKind.CATCHUP, due.next_run, run_id, due.count)

    def _remember(self, job: Job) -> _Loaded:
        plan = plan_of(job)
        loaded = _Loaded(job, plan, plan.trigger(job.created_at), plan.key(job.created_at))
        self._loaded[job.id] = loaded
        self._versions[job.id] = job.version
        return loaded

    # --- firing ----------------------------------------------------------------------

    def _due(self, job_ids: Sequence[str], due: datetime) -> None:
        if self._claims is not None:
            self._claims.add(self._prepare(job_ids, due))

    def _prepare(self, job_ids: Sequence[str], due: datetime) -> list[Claim]:
        """The claims for jobs due together (they share a trigger, so its next time)."""
        claims: list[Claim] = []
        following: dict[str, datetime | None] = {}
        for job_id in job_ids:
            loaded = self._loaded.get(job_id)
            if loaded is None:
                continue
            if loaded.key not in following:
                following[loaded.key] = next_after(loaded.trigger, due)
            claims.append(self._claim(job_id, due, following[loaded.key]))
        return claims

    def _claim(self, job_id: str, due: datetime, following: datetime | None) -> Claim:
        return Claim(job_id, due, FireKind.AHEAD, following, uuid.uuid4().hex)

    def _on_claimed(self, claims: list[Claim]) -> None:
        ahead: list[Fire] = []
        for claim in claims:
            loaded = self._loaded.get(claim.job_id)
            if loaded is None:
                if claim.kind is FireKind.AHEAD:  # paused or removed while being claimed
                    self._settle([_withdrawn(claim)])
                continue
            if claim.next_run_at is None:
                self._loaded.pop(claim.job_id, None)
            fire = Fire(loaded.job, claim)
            if claim.kind is FireKind.SKIPPED:
                self._hooks.skipped(fire)
            elif claim.kind is FireKind.AHEAD:
                ahead.append(fire)
            elif claim.run_id is not None:
                self._launch(fire)
        if ahead and self._holding is not None:
            self._holding.add(ahead)

    def _release(self, fires: list[Fire]) -> None:
        """The due instant of runs claimed ahead: hand them over, or say why not.

        A run handed over starts when its mark is written (`_on_marked`), not now: the
        mark is what tells a next leader that the run is not its to start.
        """
        outcomes: list[Claim] = []
        for fire in fires:
            job = self._still_wanted(fire)
            if job is None:
                outcomes.append(_withdrawn(fire.claim))
            elif job.id in self._in_flight:
                # The last run still goes; a second one at once would only pile up.
                log.warning(
                    "job %s is still running at its next due time; skipping one run", job.id
                )
                outcomes.append(replace(fire.claim, kind=FireKind.BUSY, run_id=None, missed=1))
            else:
                claim = replace(fire.claim, kind=FireKind.SCHEDULED)
                self._in_flight.add(job.id)  # from now: its next due time finds it busy
                self._handing[claim.key] = Fire(job, claim)
                outcomes.append(claim)
        self._settle(outcomes)

    def _still_wanted(self, fire: Fire) -> Job | None:
        """The job as it is now, if its run claimed ahead should still start."""
        job = fire.job
        if self._versions.get(job.id, job.version) == job.version:
            return job  # unchanged since the claim (a finished one-off is no longer loaded)
        loaded = self._loaded.get(job.id)
        if loaded is not None and loaded.key == plan_of(job).key(job.created_at):
            return loaded.job  # changed, but not when it runs: run it as it is now
        return None  # paused, removed or rescheduled since

    def _settle(self, outcomes: list[Claim]) -> None:
        if self._marks is not None:
            self._marks.add(outcomes)

    async def _mark(self, outcomes: list[Claim]) -> list[Claim]:
        marked = await self.store.settle(outcomes, self.holder)
        keys = {claim.key for claim in marked}
        if lost := [c for c in outcomes if c.key not in keys and c.key in self._handing]:
            # Another leader took these rows over (this one lost its lock): it starts them.
            log.warning("%d run(s) claimed here were taken over by another leader", len(lost))
            self._unhand([self._handing[claim.key] for claim in lost])
        return marked

    def _on_marked(self, marked: list[Claim]) -> None:
        for claim in marked:
            fire = self._handing.pop(claim.key, None)
            if fire is not None:
                self._launch(fire)

    def _on_mark_failed(self, outcomes: list[Claim], error: str) -> None:
        # The rows stay `ahead` and their runs did not start: the next leader starts them.
        log.error("could not record what became of %d run(s): %s", len(outcomes), error)
        unstarted = [self._handing[c.key] for c in outcomes if c.key in self._handing]
        if unstarted:
            self._unhand(unstarted)
            listed = ", ".join(sorted({fire.job.id for fire in unstarted})[:10])
            self._hooks.alert(
                f"{len(unstarted)} due run(s) could not be recorded and did not run ({listed}): "
                f"{error}. The next scheduler start runs them if they are still owed."
            )

    def _unhand(self, fires: list[Fire]) -> None:
        """Forget runs on their way to the bot that will not start here."""
        for fire in fires:
            self._handing.pop(fire.claim.key, None)
            self._in_flight.discard(fire.job.id)

    async def _recover(self, now: datetime) -> None:
        """Take over runs an earlier leader claimed ahead and stopped before handing over."""
        since = now - self.settings.grace - self.settings.claim_ahead - SYNC_MARGIN
        rows = await self.store.reown(self.holder, since)
        if not rows:
            return
        log.warning("taking over %d run(s) claimed ahead by a scheduler that stopped", len(rows))
        jobs = {job.id: job for job in await self.store.jobs([row.job_id for row in rows])}
        held: list[Fire] = []
        for row in rows:
            job = jobs.get(row.job_id)
            claim = Claim(
                row.job_id,
                row.scheduled_for,
                FireKind.AHEAD,
                job.next_run_at if job else None,
                row.run_id,
                row.missed,
            )
            if job is None or not _owed(job, claim):
                self._settle([_withdrawn(claim)])
            elif now - claim.scheduled_for > self.settings.grace:
                skipped = replace(claim, kind=FireKind.SKIPPED, run_id=None, missed=1)
                self._settle([skipped])
                self._hooks.skipped(Fire(job, skipped))
            else:
                held.append(Fire(job, claim))
        if held and self._holding is not None:
            self._holding.add(held)  # those already due start at once

    def _launch(self, fire: Fire) -> None:
        job_id = fire.job.id
        self._in_flight.add(job_id)
        try:
            running = self._hooks.launch(fire)
        except Exception:
            self._in_flight.discard(job_id)
            log.exception("could not start a run of job %s", job_id)
            self._hooks.alert(f"Job {job_id} was due but its run could not start; see the log.")
            return
        running.add_done_callback(lambda _done: self._in_flight.discard(job_id))

    def _on_claim_failed(self, claims: list[Claim], error: str) -> None:
        listed = ", ".join(sorted({c.job_id for c in claims})[:10])
        self._hooks.alert(
            f"{len(claims)} due run(s) could not be recorded and did not run ({listed}): {error}"
        )

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
            if self._versions.get(job_id) != version:
                changed.append(job_id)
        for job in await self.store.jobs(changed) if changed else []:
            await self._apply(job)

    async def _apply(self, job: Job) -> None:
        if self._engine is None or self.role is not Role.LEADER:
            return
        self._versions[job.id] = job.version
        if job.state != JobState.ACTIVE:
            self._loaded.pop(job.id, None)
            self._engine.drop(job.id)
            return
        loaded = self._remember(job)
        due = missed(
            loaded.trigger, last_run=job.last_run_at, since=job.active_since, now=self._clock.now()
        )
        upcoming = due.next_run
        if due.count and due.latest is not None:
            upcoming = due.latest  # due while it was being changed: fire it now
        if upcoming is None:
            self._engine.drop(job.id)
            return
        self._engine.put(job.id, loaded.key, loaded.trigger, upcoming)
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
        self._launch(fire)
        return fire

    async def status(self) -> Status:
        beat = await self.store.heartbeat("scheduler")
        return Status(
            role=self.role,
            holder=beat.holder if beat else None,
            since=beat.since if beat else None,
            heartbeat_at=beat.heartbeat_at if beat else None,
            loaded=len(self._loaded),
            next_runs=await self.store.next_runs(3),
        )

    def engine(self) -> Engine | None:
        return self._engine

    # --- tasks -----------------------------------------------------------------------

    def _spawn(
        self, coro: Coroutine[Any, Any, None], name: str, owner: set[asyncio.Task[None]]
    ) -> None:
        task = asyncio.create_task(coro, name=name)
        owner.add(task)
        task.add_done_callback(lambda done: _finished(done, owner))


def _due_of(fire: Fire) -> datetime:
    return fire.claim.scheduled_for


def _withdrawn(claim: Claim) -> Claim:
    return replace(claim, kind=FireKind.WITHDRAWN, run_id=None)


def _owed(job: Job, claim: Claim) -> bool:
    """A run claimed ahead is still owed if its job was not paused, removed or
    rescheduled since (each of those moves `active_since` or leaves the job inactive)."""
    live = job.state in (JobState.ACTIVE, JobState.DONE)
    return live and job.active_since <= claim.scheduled_for


def _finished(task: asyncio.Task[None], owner: set[asyncio.Task[None]]) -> None:
    owner.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("scheduler task %s failed", task.get_name(), exc_info=task.exception())


async def _cancel(tasks: set[asyncio.Task[None]]) -> None:
    pending = list(tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
