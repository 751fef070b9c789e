"""Firing: claim runs ahead of their due time, hand them over at the due instant.

A run is claimed `claim_ahead` before it is due and held (`scheduler.ahead`); at the
due instant its claim row is marked with what becomes of it: handed over, or not
because its job changed meanwhile or its previous run still goes (checked then, not
at the claim). A run handed over starts once that mark is written (one batched
UPDATE): a row left `ahead` by a leader that died is then one whose run never
started, so the next leader can start it without running anything twice.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from scheduler.ahead import Holding
from scheduler.claims import Claims
from scheduler.engine import Engine
from scheduler.hooks import Fire, JobHooks
from scheduler.loaded import LoadedJobs, plan_of
from scheduler.plan import next_after
from scheduler.settings import Settings
from storage.clock import Clock
from storage.jobs import Claim, FireKind, JobStore
from storage.models import Job
from storage.tasks import TaskSet

log = logging.getLogger(__name__)

# Runs wait for their mark to start, so marks go in larger statements than claims: for
# 1,000 runs due at once, p99 lateness ~30 ms in chunks of 500, ~60-90 ms in chunks of 250.
MARK_CHUNK = 500


class Firing:
    """The leader's way from a due time to a started run; `start` and `stop` bracket leading."""

    def __init__(
        self,
        *,
        store: JobStore,
        holder: str,
        hooks: JobHooks,
        clock: Clock,
        settings: Settings,
        loaded: LoadedJobs,
    ) -> None:
        self.store = store
        self.holder = holder
        self.settings = settings
        self.hooks = hooks
        self.clock = clock
        self.loaded = loaded
        self.engine: Engine | None = None
        self._claims: Claims | None = None
        self._marks: Claims | None = None  # what became of runs claimed ahead
        self._holding: Holding[Fire] | None = None
        self._handing: dict[tuple[str, float], Fire] = {}  # due, to start once marked
        self._in_flight: set[str] = set()

    def start(self, tasks: TaskSet) -> Engine:
        """Start claiming and marking (their tasks go in `tasks`); the engine starts paused."""
        engine = Engine(self._due, lead=self.settings.claim_ahead)
        claims = Claims(
            write=lambda batch: self.store.claim(batch, self.holder),
            claimed=self.on_claimed,
            failed=self._on_claim_failed,
        )
        marks = Claims(
            write=self._mark,
            claimed=self._on_marked,
            failed=self._on_mark_failed,
            chunk=MARK_CHUNK,
        )
        self.engine, self._claims, self._marks = engine, claims, marks
        self._holding = Holding(clock=self.clock, due=_due_of, release=self._release)
        tasks.spawn(claims.run(), name="scheduler-claims")
        tasks.spawn(marks.run(), name="scheduler-marks")
        engine.start()
        return engine

    async def stop(self) -> None:
        """Stop firing, and wait (a while) for the claims and marks under way."""
        if self.engine is not None:
            await self.engine.stop()
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

    def forget(self) -> None:
        """Drop the engine and queues of a time leading (once their tasks are cancelled)."""
        self.engine, self._claims, self._marks, self._holding = None, None, None, None

    def hold(self, fires: list[Fire]) -> None:
        """Hold runs claimed ahead until they are due (those already due start at once)."""
        if self._holding is not None:
            self._holding.add(fires)

    def _due(self, job_ids: Sequence[str], due: datetime) -> None:
        if self._claims is not None:
            self._claims.add(self._prepare(job_ids, due))

    def _prepare(self, job_ids: Sequence[str], due: datetime) -> list[Claim]:
        """The claims for jobs due together (they share a trigger, so its next time)."""
        claims: list[Claim] = []
        following: dict[str, datetime | None] = {}
        for job_id in job_ids:
            loaded = self.loaded.jobs.get(job_id)
            if loaded is None:
                continue
            if loaded.key not in following:
                following[loaded.key] = next_after(loaded.trigger, due)
            claims.append(self._claim(job_id, due, following[loaded.key]))
        return claims

    def _claim(self, job_id: str, due: datetime, following: datetime | None) -> Claim:
        return Claim(job_id, due, FireKind.AHEAD, following, uuid.uuid4().hex)

    def on_claimed(self, claims: list[Claim]) -> None:
        ahead: list[Fire] = []
        for claim in claims:
            loaded = self.loaded.jobs.get(claim.job_id)
            if loaded is None:
                if claim.kind is FireKind.AHEAD:  # paused or removed while being claimed
                    self.settle([withdrawn(claim)])
                continue
            if claim.next_run_at is None:
                self.loaded.jobs.pop(claim.job_id, None)
            fire = Fire(loaded.job, claim)
            if claim.kind is FireKind.SKIPPED:
                self.hooks.skipped(fire)
            elif claim.kind is FireKind.AHEAD:
                ahead.append(fire)
            elif claim.run_id is not None:
                self.launch(fire)
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
                outcomes.append(withdrawn(fire.claim))
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
        self.settle(outcomes)

    def _still_wanted(self, fire: Fire) -> Job | None:
        """The job as it is now, if its run claimed ahead should still start."""
        job = fire.job
        if self.loaded.versions.get(job.id, job.version) == job.version:
            return job  # unchanged since the claim (a finished one-off is no longer loaded)
        loaded = self.loaded.jobs.get(job.id)
        if loaded is not None and loaded.key == plan_of(job).key(job.created_at):
            return loaded.job  # changed, but not when it runs: run it as it is now
        return None  # paused, removed or rescheduled since

    def settle(self, outcomes: list[Claim]) -> None:
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
                self.launch(fire)

    def _on_mark_failed(self, outcomes: list[Claim], error: str) -> None:
        # The rows stay `ahead` and their runs did not start: the next leader starts them.
        log.error("could not record what became of %d run(s): %s", len(outcomes), error)
        unstarted = [self._handing[c.key] for c in outcomes if c.key in self._handing]
        if unstarted:
            self._unhand(unstarted)
            listed = ", ".join(sorted({fire.job.id for fire in unstarted})[:10])
            self.hooks.alert(
                f"{len(unstarted)} due run(s) could not be recorded and did not run ({listed}): "
                f"{error}. The next scheduler start runs them if they are still owed."
            )

    def _unhand(self, fires: list[Fire]) -> None:
        """Forget runs on their way to the bot that will not start here."""
        for fire in fires:
            self._handing.pop(fire.claim.key, None)
            self._in_flight.discard(fire.job.id)

    def launch(self, fire: Fire) -> None:
        job_id = fire.job.id
        self._in_flight.add(job_id)
        try:
            running = self.hooks.launch(fire)
        except Exception:
            self._in_flight.discard(job_id)
            log.exception("could not start a run of job %s", job_id)
            self.hooks.alert(f"Job {job_id} was due but its run could not start; see the log.")
            return
        running.add_done_callback(lambda _done: self._in_flight.discard(job_id))

    def _on_claim_failed(self, claims: list[Claim], error: str) -> None:
        listed = ", ".join(sorted({c.job_id for c in claims})[:10])
        self.hooks.alert(
            f"{len(claims)} due run(s) could not be recorded and did not run ({listed}): {error}"
        )


def _due_of(fire: Fire) -> datetime:
    return fire.claim.scheduled_for


def withdrawn(claim: Claim) -> Claim:
    return replace(claim, kind=FireKind.WITHDRAWN, run_id=None)
