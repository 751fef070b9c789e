"""Commands about scheduled jobs: /every /cron /at /jobs /pause /resume /unschedule /run."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import datetime

from bot import markdown, messages
from bot.commands import command
from bot.config import CurrentConfig, Role
from bot.delivery.postman import Postman
from bot.intake.command_spec import CommandContext
from bot.jobruns import report_target
from bot.runs.runner import Runner
from bot.text import Piece, bold, code
from bot.types import Outgoing
from roster.errors import AgentNotFound
from roster.roster import Roster
from scheduler.errors import SchedulerError
from scheduler.parse import EXAMPLES, JobRequest, parse_request
from scheduler.service import Scheduler, plan_of
from scheduler.watch import ago
from storage.audit import AuditLog
from storage.clock import Clock
from storage.models import Job, JobState

CHECK_TIMEOUT_SECONDS = 15.0
SCHEDULER_OFF = "The scheduler is switched off ([scheduler] enabled = false)."


class JobCommands:
    """Scheduled jobs: making them, listing, pausing, running now."""

    def __init__(
        self,
        *,
        config: CurrentConfig,
        clock: Clock,
        roster: Roster,
        audit: AuditLog,
        postman: Postman,
        runner: Runner,
        scheduler: Scheduler | None,
        redact: Callable[[str], str],
    ) -> None:
        self._config = config
        self._clock = clock
        self._roster = roster
        self._audit = audit
        self._postman = postman
        self._runner = runner
        self._scheduler = scheduler
        self._redact = redact

    @command(
        "every",
        role=Role.ADMIN,
        help="run an agent on a schedule",
        usage="30m <agent> <text>",
        once=True,
    )
    async def every(self, ctx: CommandContext) -> None:
        await self._create(ctx, "every")

    @command(
        "cron",
        role=Role.ADMIN,
        help="run an agent on a cron schedule",
        usage='"0 9 * * 1-5" <agent> <text>',
        once=True,
    )
    async def cron(self, ctx: CommandContext) -> None:
        await self._create(ctx, "cron")

    @command(
        "at",
        role=Role.ADMIN,
        help="run an agent once, later",
        usage="2026-12-01 08:00 <agent> <text>",
        once=True,
    )
    async def at(self, ctx: CommandContext) -> None:
        await self._create(ctx, "at")

    @command(
        "jobs", role=Role.VIEWER, help="scheduled jobs, or one job's recent runs", usage="[id]"
    )
    async def jobs(self, ctx: CommandContext) -> None:
        scheduler = await self._scheduler_or_say(ctx)
        if scheduler is None:
            return
        job_id = ctx.args.strip()
        if job_id:
            await self._show_job(ctx, scheduler, job_id)
            return
        rows, total = await scheduler.store.listed(limit=30)
        if not rows:
            await ctx.reply("No jobs. ", code(EXAMPLES["every"].split("  or  ")[0]), " makes one.")
            return
        lines: list[Piece] = [bold(f"Jobs ({total})"), "\n"]
        for job in rows:
            lines += [*_job_line(job), "\n"]
        if total > len(rows):
            lines.append(f"…and {total - len(rows)} more.")
        await ctx.reply(*lines)

    @command("pause", role=Role.ADMIN, help="pause a job", usage="<id>")
    async def pause(self, ctx: CommandContext) -> None:
        await self._change(ctx, "paused", Scheduler.pause)

    @command("resume", role=Role.ADMIN, help="resume a paused job", usage="<id>")
    async def resume(self, ctx: CommandContext) -> None:
        await self._change(ctx, "resumed", Scheduler.resume)

    @command("unschedule", role=Role.ADMIN, help="remove a job", usage="<id>")
    async def unschedule(self, ctx: CommandContext) -> None:
        await self._change(ctx, "removed", Scheduler.remove)

    @command("run", role=Role.ADMIN, help="run a job now", usage="<id>", once=True)
    async def run(self, ctx: CommandContext) -> None:
        scheduler = await self._scheduler_or_say(ctx)
        job_id = ctx.args.strip()
        if scheduler is None or not await self._needs_id(ctx, job_id):
            return
        try:
            fire = await scheduler.run_now(job_id)
        except SchedulerError as exc:
            await ctx.reply(str(exc))
            return
        self._audit.record(ctx.user, "job.run", job_id, run=fire.run_id)
        chat, _ = report_target(fire.job)
        where = "" if chat == ctx.incoming.chat else f" It reports to {chat}."
        await ctx.reply(f"Running job {job_id} now.{where}")

    async def _create(self, ctx: CommandContext, kind: str) -> None:
        scheduler = await self._scheduler_or_say(ctx)
        if scheduler is None:
            return
        try:
            request = parse_request(
                kind, ctx.args, default_tz=self._config().deck.timezone, now=self._clock.now()
            )
            self._roster.get(request.agent)
        except (SchedulerError, AgentNotFound) as exc:
            self._audit.record(ctx.user, "job.refused", kind, args=ctx.args[:200], reason=str(exc))
            await ctx.reply(str(exc))
            return
        if self._redact(request.input) != request.input:
            self._audit.record(ctx.user, "job.refused", kind, reason="holds a secret's value")
            await ctx.reply(*markdown.inline(messages.JOB_HOLDS_SECRET))
            return
        job = self._new_job(ctx, request)
        refusal = await self._check_target(ctx, job)
        if refusal:
            self._audit.record(ctx.user, "job.refused", kind, reason=refusal)
            await ctx.reply(refusal, " The job was not created.")
            return
        await scheduler.create(job)
        self._audit.record(ctx.user, "job.created", job.id, agent=job.agent, plan=job.spec)
        await ctx.reply(
            *_job_line(job), "\n", code(f"/pause {job.id}"), " · ", code(f"/unschedule {job.id}")
        )

    def _new_job(self, ctx: CommandContext, request: JobRequest) -> Job:
        now = self._clock.now()
        to = request.report_to
        return Job(
            id=secrets.token_hex(3),
            agent=request.agent,
            input=request.input,
            trigger=request.plan.kind,
            spec=request.plan.spec,
            timezone=request.plan.timezone,
            chat_id=ctx.incoming.chat,
            thread_id=ctx.incoming.thread,
            report_to=to if to and to != ctx.incoming.chat else None,
            created_by=ctx.user,
            active_since=now,
            created_at=now,
            updated_at=now,
        )

    async def _check_target(self, ctx: CommandContext, job: Job) -> str:
        """Post to a `to=` chat now, so a target that cannot be reached is refused today."""
        if job.report_to is None:
            return ""
        if not self._postman.knows(job.report_to):
            running = ", ".join(self._postman.names())
            return f"I cannot post to {job.report_to}: no such transport runs (running: {running})."
        note = Outgoing.plain(
            job.report_to, f"Job {job.id} ({job.agent}) will report here; set up by {ctx.user}."
        )
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                await self._postman.deliver(note)  # a test: we want the answer now, not later
        except Exception as exc:
            return f"I cannot post to {job.report_to} ({type(exc).__name__}: {str(exc)[:200]})."
        return ""

    async def _change(self, ctx: CommandContext, done: str, action: object) -> None:
        scheduler = await self._scheduler_or_say(ctx)
        job_id = ctx.args.strip()
        if scheduler is None or not await self._needs_id(ctx, job_id):
            return
        assert callable(action)
        try:
            job = await action(scheduler, job_id)
        except SchedulerError as exc:
            await ctx.reply(str(exc))
            return
        self._audit.record(ctx.user, f"job.{done}", job_id)
        await ctx.reply(f"Job {job.id} {done}.")

    async def _show_job(self, ctx: CommandContext, scheduler: Scheduler, job_id: str) -> None:
        try:
            job = await scheduler.get(job_id)
        except SchedulerError as exc:
            await ctx.reply(str(exc))
            return
        chat, thread = report_target(job)
        lines: list[Piece] = [
            *_job_line(job),
            "\n",
            f"Reports to {chat}",
            f" (thread {thread})" if thread else "",
            f"; made by {job.created_by}.\n",
        ]
        await self._runner.flush()
        runs = await scheduler.store.recent_runs(job.id)
        lines.append(bold("Recent runs") if runs else "No runs yet.")
        for row, fire in runs:
            took = (
                f"{(row.finished_at - row.started_at).total_seconds():.1f} s"
                if row.finished_at
                else "…"
            )
            sent = "delivered" if row.delivered else "NOT delivered"
            extra = (
                f" · stood for {fire.missed} missed" if fire is not None and fire.missed > 1 else ""
            )
            tokens = (
                f" · {row.tokens_in}+{row.tokens_out} tok"
                if row.tokens_in or row.tokens_out
                else ""
            )
            lines += [
                "\n",
                code(row.id[:8]),
                f" {_when(row.started_at)} {row.status} {took}{tokens} · {sent}{extra}",
            ]
        await ctx.reply(*lines)

    async def _needs_id(self, ctx: CommandContext, job_id: str) -> bool:
        if job_id:
            return True
        await ctx.reply(f"Which job? Usage: /{ctx.name} <id>. /jobs lists them.")
        return False

    async def _scheduler_or_say(self, ctx: CommandContext) -> Scheduler | None:
        if self._scheduler is None:
            await ctx.reply(SCHEDULER_OFF)
        return self._scheduler


def _job_line(job: Job) -> list[Piece]:
    plan = plan_of(job)
    state = {
        JobState.ACTIVE: f"next {_when(job.next_run_at)}" if job.next_run_at else "no next run",
        JobState.PAUSED: "paused",
        JobState.DONE: "done",
        JobState.REMOVED: "removed",
    }[job.state]
    last = f" · last {job.last_status}" if job.last_status else ""
    source = " [config]" if job.source == "config" else ""
    return [
        code(job.id),
        f"{source} {plan.describe()} · {job.agent} {job.input}".rstrip(),
        f" · {state}{last}",
    ]


def _when(moment: datetime | None) -> str:
    return "?" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S} UTC"


async def scheduler_lines(scheduler: Scheduler | None, clock: Clock) -> list[Piece]:
    """The scheduler's part of /status: who leads, the heartbeat, the next runs."""
    if scheduler is None:
        return [f"\n{SCHEDULER_OFF}"]
    status = await scheduler.status()
    here = " (this process)" if status.holder == scheduler.holder else ""
    beat = "no heartbeat yet"
    if status.heartbeat_at is not None:
        age = clock.now() - status.heartbeat_at
        beat = f"heartbeat {ago(age)} ago"
        if age > scheduler.settings.silent_after:
            beat += " (stopped beating: that process has ended or hangs)"
    lines: list[Piece] = [
        f"\nScheduler: {status.role}{here}; leader {status.holder or 'none'}; {beat}"
    ]
    for job in status.next_runs:
        lines += [
            "\n  next ",
            code(job.id),
            f" {_when(job.next_run_at)} {job.agent} {job.input}".rstrip(),
        ]
    return lines
