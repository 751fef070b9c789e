"""Starting to lead: make up for runs missed while nobody led, take over orphaned runs.

Runs missed while nobody was leading get one coalesced run per job, or a note when
they are older than the grace time. Runs an earlier leader claimed ahead but never
handed over are taken over: their rows are still `ahead`, so they never started.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from datetime import datetime, timedelta

from scheduler.firing import Firing, withdrawn
from scheduler.hooks import Fire
from scheduler.loaded import DueEntry
from scheduler.pacing import paced
from scheduler.plan import Missed, missed
from scheduler.settings import SYNC_MARGIN
from storage.jobs import Claim, FireKind
from storage.models import Job, JobState

log = logging.getLogger(__name__)

CLAIM_CHUNK = 500
# Jobs due within this are handed to APScheduler before firing starts; the rest after.
LOAD_AHEAD = timedelta(minutes=1)


class Recovery:
    """Load the active jobs when leading starts, owing nothing and running nothing twice."""

    def __init__(self, firing: Firing) -> None:
        # The same store, holder, hooks, clock, settings and loaded jobs as the firing:
        # what recovery owes is claimed and handed over the firing's way.
        self._firing = firing

    async def load(self, jobs: list[Job]) -> list[DueEntry]:
        """Make up for what fell due while nobody led, and schedule what is due soon.

        Returns the jobs due later, to be scheduled once firing has started: with
        thousands of jobs, handing them all to APScheduler takes seconds.
        """
        assert self._firing.engine is not None
        now = self._firing.clock.now()
        catchups: list[Claim] = []
        entries: list[DueEntry] = []
        next_runs: list[tuple[str, datetime | None]] = []
        async for job in paced(jobs):
            loaded = self._firing.loaded.remember(job)
            due = missed(loaded.trigger, last_run=job.last_run_at, since=job.active_since, now=now)
            if due.count:
                catchups.append(self._catchup(job, due, now))
            if due.next_run is not None:
                entries.append(DueEntry(due.next_run, job.id, loaded))
            if due.next_run != job.next_run_at and not due.count:
                next_runs.append((job.id, due.next_run))
        for start in range(0, len(catchups), CLAIM_CHUNK):
            chunk = catchups[start : start + CLAIM_CHUNK]
            self._firing.on_claimed(await self._firing.store.claim(chunk, self._firing.holder))
        await self._recover(now)
        for start in range(0, len(next_runs), CLAIM_CHUNK):
            await self._firing.store.set_next_runs(next_runs[start : start + CLAIM_CHUNK])
        entries.sort(key=lambda entry: entry.next_run)
        horizon = self._firing.clock.now() + LOAD_AHEAD
        soon = [entry for entry in entries if entry.next_run <= horizon]
        await self.load_later(soon)
        return entries[len(soon) :]

    async def load_later(self, entries: list[DueEntry]) -> None:
        async for entry in paced(entries):
            # A job changed from chat meanwhile was scheduled (or dropped) by that change.
            engine = self._firing.engine
            if engine is not None and self._firing.loaded.jobs.get(entry.job_id) is entry.loaded:
                loaded = entry.loaded
                engine.put(entry.job_id, loaded.key, loaded.trigger, entry.next_run)

    def _catchup(self, job: Job, due: Missed, now: datetime) -> Claim:
        assert due.latest is not None
        if now - due.latest > self._firing.settings.grace:
            return Claim(job.id, due.latest, FireKind.SKIPPED, due.next_run, missed=due.count)
        run_id = uuid.uuid4().hex
        return Claim(job.id, due.latest, FireKind.CATCHUP, due.next_run, run_id, due.count)

    async def _recover(self, now: datetime) -> None:
        """Take over runs an earlier leader claimed ahead and stopped before handing over."""
        since = now - self._firing.settings.grace - self._firing.settings.claim_ahead - SYNC_MARGIN
        rows = await self._firing.store.reown(self._firing.holder, since)
        if not rows:
            return
        log.warning("taking over %d run(s) claimed ahead by a scheduler that stopped", len(rows))
        jobs = {job.id: job for job in await self._firing.store.jobs([row.job_id for row in rows])}
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
                self._firing.settle([withdrawn(claim)])
            elif now - claim.scheduled_for > self._firing.settings.grace:
                skipped = replace(claim, kind=FireKind.SKIPPED, run_id=None, missed=1)
                self._firing.settle([skipped])
                self._firing.hooks.skipped(Fire(job, skipped))
            else:
                held.append(Fire(job, claim))
        if held:
            self._firing.hold(held)  # those already due start at once


def _owed(job: Job, claim: Claim) -> bool:
    """A run claimed ahead is still owed if its job was not paused, removed or
    rescheduled since (each of those moves `active_since` or leaves the job inactive)."""
    live = job.state in (JobState.ACTIVE, JobState.DONE)
    return live and job.active_since <= claim.scheduled_for
