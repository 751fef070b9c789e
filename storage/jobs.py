"""The jobs table and its claims: what the scheduler reads and writes, and nothing else.

A due run is *claimed* by inserting its `(job_id, scheduled_for)` row into
`job_fires`; the primary key makes the claim succeed once, whichever process (or
stale leader) tries. The same transaction moves `jobs.last_run_at` forward, which
is what missed runs are counted from after a downtime.

A scheduled run is claimed shortly *before* it is due (kind `ahead`). At its due
instant the row is marked with what becomes of it (`settle`), and the run starts only
once that mark is written: a row still `ahead` is one whose run never started, which
the next leader takes over (`reown`). The mark takes only a row its claimer still
holds, so a run is started by the old leader or by the one that took it over, never
by both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, exists
from sqlmodel import col, delete, select, update

from storage.clock import Clock
from storage.db import Database
from storage.fires import advance_jobs, insert_fires, settle_fires
from storage.models import Job, JobFire, JobState, Run, SchedulerState

ROW_CHUNK = 100
VERSION_CHUNK = 1000
# Fields that, when changed by config, change what or when a job runs.
_DEFINITION = ("agent", "input", "trigger", "spec", "timezone", "report_to", "chat_id")


class FireKind(StrEnum):
    AHEAD = "ahead"  # claimed ahead of its due time; not handed over yet
    SCHEDULED = "scheduled"  # fired on time by the running scheduler
    CATCHUP = "catchup"  # one run for the runs missed during a downtime
    SKIPPED = "skipped"  # missed runs too old to run (past the grace time): reported only
    BUSY = "busy"  # due while the job's previous run still went: not started
    MANUAL = "manual"  # /run: does not move the schedule
    WITHDRAWN = "withdrawn"  # claimed ahead, then paused, removed or rescheduled: not run


@dataclass(frozen=True, slots=True)
class Claim:
    """A due run someone wants to start; `next_run_at` None means the job is done."""

    job_id: str
    scheduled_for: datetime
    kind: FireKind
    next_run_at: datetime | None
    run_id: str | None = None
    missed: int = 0

    @property
    def key(self) -> tuple[str, float]:
        return self.job_id, self.scheduled_for.timestamp()


@dataclass(frozen=True, slots=True)
class SyncResult:
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


class JobStore:
    def __init__(self, *, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def add(self, job: Job) -> None:
        async with self._db.session() as session:
            session.add(job)
            await session.commit()

    async def get(self, job_id: str) -> Job | None:
        async with self._db.session() as session:
            return await session.get(Job, job_id)

    async def listed(self, *, limit: int = 50) -> tuple[list[Job], int]:
        """Jobs that are still scheduled or paused, soonest first, and how many there are."""
        live = col(Job.state).in_([JobState.ACTIVE, JobState.PAUSED])
        query = (
            select(Job)
            .where(live)
            .order_by(col(Job.state), col(Job.next_run_at), col(Job.id))
            .limit(limit)
        )
        async with self._db.session() as session:
            rows = list((await session.exec(query)).all())
            total = len(rows)
            if total == limit:
                total = len((await session.exec(select(Job.id).where(live))).all())
        return rows, total

    async def active(self) -> list[Job]:
        """Every active job, read in chunks: building thousands of rows at once would hold
        the event loop (SQLAlchemy's async layer builds them in the loop's thread; a
        job row costs ~0.1-0.6 ms to build, so a chunk of 100 holds it for at most ~60)."""
        return await self._chunked(select(Job).where(Job.state == JobState.ACTIVE))

    async def jobs(self, ids: Sequence[str]) -> list[Job]:
        """The jobs with these ids, read in chunks."""
        found: list[Job] = []
        for start in range(0, len(ids), ROW_CHUNK):
            query = select(Job).where(col(Job.id).in_(ids[start : start + ROW_CHUNK]))
            async with self._db.session() as session:
                found += (await session.exec(query)).all()
            await asyncio.sleep(0)
        return found

    async def versions_since(self, since: datetime) -> list[tuple[str, int, datetime]]:
        """`(id, version, updated_at)` of the jobs changed since `since`: light rows, so
        that looking for changes stays cheap when thousands changed recently."""
        query = select(Job.id, Job.version, Job.updated_at).where(col(Job.updated_at) >= since)
        return await self._chunked(query, chunk=VERSION_CHUNK)

    async def _chunked(self, query: Any, chunk: int = ROW_CHUNK) -> list[Any]:
        """All rows of `query`, a chunk at a time in id order (keyset pages)."""
        rows: list[Any] = []
        last: str | None = None
        while True:
            page = query.order_by(col(Job.id)).limit(chunk)
            if last is not None:
                page = page.where(col(Job.id) > last)
            async with self._db.session() as session:
                got = list((await session.exec(page)).all())
            rows += got
            if len(got) < chunk:
                return rows
            last = got[-1].id

    async def set_state(self, job_id: str, state: JobState, *, allowed: set[JobState]) -> bool:
        """Change a job's state if it is in one of `allowed`; False when it was not."""
        now = self._clock.now()
        values: dict[str, Any] = {"state": state, "version": Job.version + 1, "updated_at": now}
        if state is JobState.ACTIVE:
            values["active_since"] = now  # runs missed while paused are not owed
        query = (
            update(Job)
            .where(col(Job.id) == job_id, col(Job.state).in_(list(allowed)))
            .values(**values)
        )
        async with self._db.session() as session:
            result = await session.exec(query)
            await session.commit()
        return bool(result.rowcount)

    async def claim(self, claims: Sequence[Claim], holder: str) -> list[Claim]:
        """Insert the claims; return those this call won, with the jobs moved forward."""
        unique = list({claim.key: claim for claim in claims}.values())
        if not unique:
            return []
        async with self._db.session() as session:
            connection = await session.connection()
            claimed = await insert_fires(connection, unique, holder, self._clock.now())
            moving = [c for c in claimed if c.kind is not FireKind.MANUAL]
            await advance_jobs(connection, moving)
            await session.commit()
        return claimed

    async def settle(self, claims: Sequence[Claim], holder: str) -> list[Claim]:
        """Record what became of runs claimed ahead (each claim carries its final kind);
        return the claims marked, leaving out rows another leader took over meanwhile."""
        if not claims:
            return []
        async with self._db.session() as session:
            marked = await settle_fires(await session.connection(), claims, holder)
            await session.commit()
        return marked

    async def reown(self, holder: str, since: datetime) -> list[JobFire]:
        """Take over the runs claimed ahead (since `since`) that were never handed over.

        Call only while holding the scheduler lock: whoever claimed them stopped leading.
        A row still `ahead` never had its run started (runs start once marked), except
        one left by a version that started runs first: if its run row exists, it ran.
        """
        ahead = (col(JobFire.kind) == FireKind.AHEAD, col(JobFire.claimed_at) >= since)
        started = exists().where(col(Run.id) == col(JobFire.run_id))
        taking = (
            update(JobFire)
            .where(*ahead, ~started)
            .values(claimed_by=holder, claimed_at=self._clock.now())
            .returning(JobFire)
        )
        async with self._db.session() as session:
            await session.exec(
                update(JobFire).where(*ahead, started).values(kind=FireKind.SCHEDULED)
            )
            taken = list((await session.exec(taking)).scalars())
            await session.commit()
        return taken

    async def set_next_runs(self, pairs: Sequence[tuple[str, datetime | None]]) -> None:
        """Record when each job runs next (what /jobs shows and the watchdog checks)."""
        if not pairs:
            return
        statement = (
            update(Job)
            .where(col(Job.id) == bindparam("b_id"))
            .values(next_run_at=bindparam("b_next"))
        )
        async with self._db.session() as session:
            connection = await session.connection()
            await connection.execute(statement, [{"b_id": i, "b_next": t} for i, t in pairs])
            await session.commit()

    async def add_run(self, run: Run) -> None:
        async with self._db.session() as session:
            session.add(run)
            await session.commit()

    async def set_delivered(self, run_id: str) -> None:
        async with self._db.session() as session:
            await session.exec(update(Run).where(col(Run.id) == run_id).values(delivered=True))
            await session.commit()

    async def set_last_status(self, job_id: str, status: str) -> None:
        async with self._db.session() as session:
            await session.exec(update(Job).where(col(Job.id) == job_id).values(last_status=status))
            await session.commit()

    async def overdue(self, before: datetime, limit: int = 10) -> list[Job]:
        """Active jobs whose next run is older than `before`: the scheduler is not firing."""
        query = (
            select(Job)
            .where(Job.state == JobState.ACTIVE, col(Job.next_run_at) < before)
            .order_by(col(Job.next_run_at))
            .limit(limit)
        )
        async with self._db.session() as session:
            return list((await session.exec(query)).all())

    async def next_runs(self, limit: int = 3) -> list[Job]:
        query = (
            select(Job)
            .where(Job.state == JobState.ACTIVE, col(Job.next_run_at).is_not(None))
            .order_by(col(Job.next_run_at))
            .limit(limit)
        )
        async with self._db.session() as session:
            return list((await session.exec(query)).all())

    async def recent_runs(self, job_id: str, limit: int = 10) -> list[tuple[Run, JobFire | None]]:
        """The job's latest runs, each with the claim that started it (missed count, kind)."""
        query = (
            select(Run, JobFire)
            .join(JobFire, col(JobFire.run_id) == col(Run.id), isouter=True)
            .where(Run.job_id == job_id)
            .order_by(col(Run.started_at).desc())
            .limit(limit)
        )
        async with self._db.session() as session:
            return [(run, fire) for run, fire in (await session.exec(query)).all()]

    async def fire_of_run(self, run_id: str) -> JobFire | None:
        async with self._db.session() as session:
            return (await session.exec(select(JobFire).where(JobFire.run_id == run_id))).first()

    async def prune_fires(self, before: datetime) -> int:
        """Forget claims older than any run could still be claimed again."""
        async with self._db.session() as session:
            result = await session.exec(delete(JobFire).where(col(JobFire.claimed_at) < before))
            await session.commit()
        return int(result.rowcount or 0)

    async def sync_config(self, wanted: Sequence[Job]) -> SyncResult:
        """Make the config's jobs exist as declared; keep their pause state and history."""
        now = self._clock.now()
        async with self._db.session() as session:
            query = select(Job).where(
                col(Job.id).in_([j.id for j in wanted]) | (Job.source == "config")
            )
            stored = {job.id: job for job in (await session.exec(query)).all()}
            added, changed = _apply_wanted(session, stored, wanted, now)
            removed = _remove_unwanted(stored, {j.id for j in wanted}, now)
            for job in stored.values():
                session.add(job)
            await session.commit()
        return SyncResult(tuple(added), tuple(changed), tuple(removed))

    async def beat(self, name: str, holder: str, since: datetime) -> None:
        """Write the scheduler's heartbeat (and who holds it)."""
        now = self._clock.now()
        async with self._db.session() as session:
            row = await session.get(SchedulerState, name)
            if row is None:
                row = SchedulerState(name=name, holder=holder, since=since, heartbeat_at=now)
            row.holder, row.since, row.heartbeat_at = holder, since, now
            session.add(row)
            await session.commit()

    async def heartbeat(self, name: str) -> SchedulerState | None:
        async with self._db.session() as session:
            return await session.get(SchedulerState, name)


def _apply_wanted(
    session: Any, stored: dict[str, Job], wanted: Sequence[Job], now: datetime
) -> tuple[list[str], list[str]]:
    added: list[str] = []
    changed: list[str] = []
    for job in wanted:
        current = stored.get(job.id)
        if current is None:
            session.add(job)
            added.append(job.id)
            continue
        differs = {f for f in _DEFINITION if getattr(current, f) != getattr(job, f)}
        # Back in the config after a removal, or a one-off given a new time: schedule it again.
        revive = current.state == JobState.REMOVED or (
            current.state == JobState.DONE and bool(differs)
        )
        if not differs and not revive and current.source == "config":
            continue
        for field in (*_DEFINITION, "source", "created_by"):
            setattr(current, field, getattr(job, field))
        if revive:
            current.state = JobState.ACTIVE
        if revive or {"trigger", "spec", "timezone"} & differs:
            current.active_since = now  # a new schedule owes nothing from the old one
        current.version += 1
        current.updated_at = now
        changed.append(job.id)
    return added, changed


def _remove_unwanted(stored: dict[str, Job], wanted: set[str], now: datetime) -> list[str]:
    removed: list[str] = []
    for job in stored.values():
        if job.source == "config" and job.id not in wanted and job.state != JobState.REMOVED:
            job.state = JobState.REMOVED
            job.version += 1
            job.updated_at = now
            removed.append(job.id)
    return removed
