"""Job runs, the bot's side: start them through the Runner and make their reports arrive.

The scheduler claims a due run and calls `launch`; the run goes through the Runner
like any other (approval-gated actions go to the approvers), with its report in the
job's chat. The Runner hands the result back to `JobReports.report`: a report counts
as delivered when the transport returned the message's id; otherwise it goes to the
outbox. A failed run is also escalated to the admin chat.

The parts are built in `bot.graph` (reports before the Runner, the hooks after it, the
scheduler after the hooks); `open_scheduler` only runs the scheduler.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.delivery import sendkeys
from bot.delivery.outbox import Delivered, Outbox
from bot.delivery.postman import Postman
from bot.runs.progress import Progress
from bot.runs.runner import Origin, Runner
from bot.text import Rich, bold, plain_text, rich
from bot.types import MessageRef, Outgoing, Queued
from roster.errors import AgentNotFound, AgentUnavailable
from roster.roster import Roster
from scheduler.service import LOCK_KEY, Fire, Scheduler, Settings, plan_of
from storage.jobs import FireKind, JobStore, SyncResult
from storage.locks import AdvisoryLock
from storage.models import Job, OutboxMessage, Run, RunState
from storage.runs import ActiveRun
from storage.tasks import TaskSet

if TYPE_CHECKING:
    from bot.config import Config, JobEntry
    from storage.clock import Clock
    from storage.db import Database
    from storage.writer import WriteBehind

log = logging.getLogger(__name__)

REPORT_TIMEOUT_SECONDS = 30.0
ESCALATE = {RunState.FAILED, RunState.INTERRUPTED}


def report_target(job: Job) -> tuple[str, str | None]:
    """Where a job reports: its `report_to`, else the chat (and thread) it was made in."""
    if job.report_to:
        return job.report_to, None
    return job.chat_id, job.thread_id


class JobReports:
    """The end of a job's run: its report, headed by the job, delivered or kept (the Runner
    calls `report`). Knows each run's firing while it goes, for the headline."""

    def __init__(self, *, store: JobStore, outbox: Outbox, writer: WriteBehind) -> None:
        self._store = store
        self._outbox = outbox
        self._writer = writer  # the run's row is written behind; it must exist first
        self._fires: dict[str, Fire] = {}  # run id -> its firing, while the run goes

    def firing(self, run_id: str, fire: Fire) -> None:
        self._fires[run_id] = fire

    def ended(self, run_id: str) -> None:
        self._fires.pop(run_id, None)

    async def report(
        self, run: ActiveRun, status: RunState, text: Rich, progress: Progress
    ) -> None:
        assert run.job_id is not None
        message = (*await self._headline(run), *text)
        ref = await self._post(run, progress, message)
        await self._writer.flush()  # the run's row is written behind; it must exist
        if ref is not None:
            await self._store.set_delivered(run.id)
        else:
            outgoing = Outgoing(chat=run.chat_id, thread=run.thread_id, text=message)
            await self._outbox.put(f"run:{run.id}", outgoing, subject=f"run:{run.id}")
        await self._store.set_last_status(run.job_id, status)
        if status in ESCALATE:
            await self._outbox.tell_admin(
                f"escalate:{run.id}",
                f"Job {run.job_id} failed ({run.agent}, run {run.id[:8]}): "
                f"{plain_text(text)[:500]}",
            )

    async def _post(self, run: ActiveRun, progress: Progress, message: Rich) -> MessageRef | None:
        try:
            async with asyncio.timeout(REPORT_TIMEOUT_SECONDS):
                sent = await progress.finish(message, key=f"run:{run.id}")
        except Exception as exc:
            sent = Queued(str(exc), exc)
        if isinstance(sent, Queued):
            log.warning("the report of run %s was not delivered (%s); outbox", run.id, sent.reason)
            return None
        return sent

    async def _headline(self, run: ActiveRun) -> Rich:
        fire = self._fires.get(run.id)
        job, claim = (fire.job, fire.claim) if fire else await self._stored(run)
        if job is None:
            return rich(bold(f"Job {run.job_id}"), "\n")
        return rich(bold(f"Job {job.id}"), f" · {plan_of(job).describe()}", _note(claim), "\n")

    async def _stored(self, run: ActiveRun) -> tuple[Job | None, Any]:
        """After a restart (a run resumed by an approval) the firing is in the database."""
        assert run.job_id is not None
        return await self._store.get(run.job_id), await self._store.fire_of_run(run.id)


def report_delivered(store: JobStore) -> Delivered:
    """The outbox's callback: a run's report that went out makes its run delivered."""

    async def delivered(row: OutboxMessage, ref: MessageRef) -> None:
        if row.subject.startswith("run:"):
            await store.set_delivered(row.subject.removeprefix("run:"))

    return delivered


class JobRuns:
    """The scheduler's hooks (`JobHooks`): a due run starts through the Runner."""

    def __init__(
        self,
        *,
        runner: Runner,
        roster: Roster,
        postman: Postman,
        outbox: Outbox,
        store: JobStore,
        reports: JobReports,
        clock: Clock,
        tasks: TaskSet,
    ) -> None:
        self._runner = runner
        self._roster = roster
        self._postman = postman
        self._outbox = outbox
        self._store = store
        self._reports = reports
        self._clock = clock
        self._tasks = tasks

    # --- JobHooks --------------------------------------------------------------------

    def launch(self, fire: Fire) -> asyncio.Future[Any]:
        return self._tasks.spawn(self._run(fire), name=f"job:{fire.job.id}")

    def skipped(self, fire: Fire) -> None:
        chat, thread = report_target(fire.job)
        upcoming = fire.claim.next_run_at
        text = rich(
            bold(f"Job {fire.job.id}"),
            f" ({fire.job.agent} {fire.job.input}): {_runs(fire.claim.missed)} fell due while "
            f"the scheduler was down, the last at {fire.claim.scheduled_for:%Y-%m-%d %H:%M} UTC, "
            f"longer ago than the grace time, so none ran.",
            f" Next run: {upcoming:%Y-%m-%d %H:%M} UTC." if upcoming else "",
        )
        key = f"skipped:{fire.job.id}:{fire.claim.scheduled_for.isoformat()}"
        self._spawn(self._outbox.put(key, Outgoing(chat=chat, thread=thread, text=text)), key)

    def alert(self, text: str) -> None:
        key = f"alert:{self._clock.now().isoformat()}:{hash(text)}"
        self._spawn(self._outbox.tell_admin(key, text), "alert")

    def _spawn(self, work: Any, name: str) -> None:
        self._tasks.spawn(work, name=f"jobs:{name}")

    # --- running ---------------------------------------------------------------------

    async def _run(self, fire: Fire) -> None:
        job, run_id = fire.job, fire.run_id
        assert run_id is not None
        chat, thread = report_target(job)
        sendkeys.open_scope(f"run:{run_id}")  # this task's messages: run:<id>#1, #2, …
        origin = Origin(chat=chat, user=job.created_by, thread=thread, job_id=job.id, run_id=run_id)
        self._reports.firing(run_id, fire)
        try:
            agent = self._roster.runnable(job.agent)
        except (AgentNotFound, AgentUnavailable) as exc:
            await self._refused(fire, origin, str(exc))
            return
        try:
            await self._runner.start(agent, origin, job.input)
        finally:
            self._reports.ended(run_id)

    async def _refused(self, fire: Fire, origin: Origin, reason: str) -> None:
        """The agent cannot run: record a failed run, and report it like one."""
        now = self._clock.now()
        run = Run(
            id=fire.run_id or "",
            agent=fire.job.agent,
            chat_id=origin.chat,
            thread_id=origin.thread,
            user_id=origin.user,
            job_id=fire.job.id,
            input=fire.job.input,
            status=RunState.FAILED,
            error=reason,
            started_at=now,
            finished_at=now,
        )
        await self._store.add_run(run)
        progress = Progress(
            postman=self._postman, chat=origin.chat, thread=origin.thread, agent=run.agent
        )
        failed = rich(bold(run.agent), f": {reason}")
        await self._reports.report(ActiveRun.of(run), RunState.FAILED, failed, progress)
        self._reports.ended(run.id)


def _note(claim: Any) -> str:
    if claim is None:
        return ""
    kind, missed = claim.kind, claim.missed
    if kind == FireKind.MANUAL:
        return " · run by hand"
    if kind == FireKind.CATCHUP:
        due = f"{claim.scheduled_for:%Y-%m-%d %H:%M} UTC"
        if missed == 1:
            return f" · due {due} while the scheduler was down: run late"
        return f" · {_runs(missed)} fell due while the scheduler was down; this run stands for all"
    return ""


def _runs(count: int) -> str:
    plus = "+" if count >= 1000 else ""
    return f"{count}{plus} run" + ("" if count == 1 else "s")


def scheduler_settings(config: Config) -> Settings:
    section = config.scheduler
    return Settings(
        timezone=config.deck.timezone,
        grace=timedelta(minutes=section.misfire_grace_minutes),
        heartbeat_seconds=section.heartbeat_seconds,
        stall=timedelta(seconds=section.stall_seconds),
        sync_seconds=section.sync_seconds,
        takeover_seconds=section.takeover_seconds,
    )


def config_jobs(config: Config, now: Any) -> list[Job]:
    """The `[[jobs]]` as rows (their report chats checked at start: `bot.app`)."""
    return [
        _config_row(entry, config.report_chat(entry), config.deck.timezone, now)
        for entry in config.jobs
    ]


def _config_row(entry: JobEntry, target: str, timezone: str, now: Any) -> Job:
    plan = entry.schedule(timezone)
    return Job(
        id=entry.name,
        agent=entry.agent,
        input=entry.input,
        trigger=plan.kind,
        spec=plan.spec,
        timezone=plan.timezone,
        chat_id=target,
        created_by="config",
        source="config",
        active_since=now,
        created_at=now,
        updated_at=now,
    )


def scheduler_for(
    config: Config, *, db: Database, store: JobStore, hooks: JobRuns, clock: Clock
) -> Scheduler | None:
    """The scheduler, not started (`open_scheduler`); None when switched off."""
    if not config.scheduler.enabled:
        return None
    return Scheduler(
        store=store,
        lock=AdvisoryLock(db, key=LOCK_KEY),
        hooks=hooks,
        clock=clock,
        settings=scheduler_settings(config),
    )


async def sync_config_jobs(config: Config, *, store: JobStore, clock: Clock) -> None:
    """The `[[jobs]]` into the job table (before the scheduler starts)."""
    synced = await store.sync_config(config_jobs(config, clock.now()))
    log.info("config jobs: added %s, changed %s, removed %s", *_listed(synced))


@asynccontextmanager
async def open_scheduler(scheduler: Scheduler | None) -> AsyncIterator[None]:
    """The scheduler running until the block ends; nothing when switched off (None)."""
    if scheduler is None:
        yield
        return
    async with scheduler:
        yield


async def halt_scheduler(scheduler: Scheduler | None) -> None:
    """Stop firing jobs (before the deck waits for its running work)."""
    if scheduler is not None:
        await scheduler.halt()


def _listed(synced: SyncResult) -> tuple[str, str, str]:
    return tuple(", ".join(ids) or "none" for ids in (synced.added, synced.changed, synced.removed))  # type: ignore[return-value]
