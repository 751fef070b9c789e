"""The bot's side of the built-in tools that reach outside one agent.

`ask_agent` (through `Delegate`), `notify` (through `Notifier`), `schedule_job` /
`list_jobs` (through `JobBook`) and `send_file` (through `FileSender`) are defined in
`roster.toolkit` against small protocols; `ToolHost` fulfils them with the deck's
services, given to its constructor.
The agents hold the tools, and delegation runs agents: so the roster the host is given
is filled with the agents after the tools are made (`bot.graph`), as a reload fills it.

Delegation runs the asked agent through the Runner like any other run: it is
recorded (tokens, cost), watched by the brakes, and shown in the chat, starting with
the chain (`router → researcher → host`). An agent that stops for approval is
suspended as usual, its card goes to the chat, and its result is posted there once
decided; the asking agent hears "needs approval" and can tell the user so.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from pathlib import PurePath
from typing import Protocol

from bot import messages
from bot.config import Config
from bot.delivery.postman import Postman
from bot.runs.runner import Origin, Runner
from bot.text import bold, rich
from bot.types import Outgoing
from roster.errors import AgentNotFound, AgentUnavailable, ToolError
from roster.mcp.spec import server_of
from roster.roster import Roster
from roster.toolkit.delegation import ARROW, Delegate, chain_of
from roster.toolkit.jobs import JobBook
from roster.toolkit.notify import Notifier
from roster.toolkit.registry import Services, build_toolbox
from roster.toolkit.sendfile import FileSender
from roster.tools import NoteStore, ToolBox, ToolCallContext
from scheduler.errors import SchedulerError
from scheduler.parse import parse_schedule
from scheduler.service import Scheduler
from storage.approvals import ApprovalStore
from storage.audit import AuditLog
from storage.clock import Clock
from storage.db import Database
from storage.models import Job, RunState
from storage.runs import RunStore

log = logging.getLogger(__name__)

MAX_ANSWER = 16_000
SCHEDULE_KINDS = ("every", "cron", "at")


class Host(Delegate, Notifier, JobBook, FileSender, Protocol):
    """What the built-in tools that reach outside one agent act through (`ToolHost`)."""


class ToolHost:
    def __init__(
        self,
        *,
        roster: Roster,
        runner: Runner,
        postman: Postman,
        audit: AuditLog,
        db: Database,
        clock: Clock,
        redact: Callable[[str], str],
        timezone: str,
        scheduler: Scheduler | None,
    ) -> None:
        self._roster = roster
        self._runner = runner
        self._postman = postman
        self._audit = audit
        self._db = db
        self._clock = clock
        self._redact = redact
        self._timezone = timezone
        self._scheduler = scheduler  # None when [scheduler] enabled = false

    # --- Delegate ----------------------------------------------------------------------

    async def ask(self, agent: str, text: str, ctx: ToolCallContext) -> str:
        try:
            target = self._roster.runnable(agent)
        except (AgentNotFound, AgentUnavailable) as exc:
            return f"error: {exc}"
        chain = (*chain_of(ctx), target.name)
        self._audit.record(ctx.user, "agent.delegated", target.name, chain=list(chain))
        line = rich(bold(ARROW.join(chain)), ": ", text[:300])
        await self._postman.send(Outgoing(chat=ctx.chat_id, thread=ctx.thread, text=line))
        origin = Origin(chat=ctx.chat_id, user=ctx.user, thread=ctx.thread, hops=chain_of(ctx))
        run = await self._runner.start(target, origin, text)
        return await self._answer(run.id, target.name)

    async def _answer(self, run_id: str, agent: str) -> str:
        """What the asked agent's run came to, as the asking model should read it."""
        await self._runner.flush()
        run = await RunStore(self._db).get(run_id)
        if run is None:
            return f"error: the run of {agent} was not recorded"
        if run.status == RunState.DONE:
            return run.output[:MAX_ANSWER] or "(no output)"
        if run.status == RunState.WAITING:
            card = await ApprovalStore(self._db).first_pending(run_id)
            return (
                f"needs approval: card {card or '?'} is in the chat; {agent} will post its "
                "result there once an approver decides. Tell the user so."
            )
        why = f": {run.error}" if run.error else ""
        return f"error: {agent} ended {run.status}{why}"[:2000]

    # --- Notifier ----------------------------------------------------------------------

    async def notify(self, chat: str, text: str, *, agent: str) -> None:
        if not self._postman.knows(chat):
            raise ToolError(f"no transport runs for {chat}")
        message = Outgoing(chat=chat, text=rich(bold(agent), ": ", text))
        try:
            await self._postman.send(message)
        except Exception as exc:  # the platform refused; the model hears why, briefly
            raise ToolError(f"could not post to {chat} ({type(exc).__name__})") from exc
        self._audit.record(agent, "tool.notify", chat, text=text[:200])

    # --- FileSender --------------------------------------------------------------------

    async def send_file(
        self, chat: str, thread: str | None, path: str, *, agent: str, key: str
    ) -> None:
        name = PurePath(path).name
        message = Outgoing(
            chat=chat, thread=thread, text=rich(bold(agent), ": ", name), files=(path,)
        )
        await self._postman.keep(key, message, subject=key)
        self._audit.record(agent, "tool.send_file", chat, name=name)

    # --- JobBook -----------------------------------------------------------------------

    async def schedule(self, *, agent: str, text: str, when: str, chat: str, user: str) -> str:
        if self._scheduler is None:
            raise ToolError("the scheduler is switched off")
        kind, _, spec = when.strip().partition(" ")
        if kind.lower() not in SCHEDULE_KINDS:
            raise ToolError("`when` starts with every, cron or at (e.g. 'every 30m')")
        try:
            name = self._roster.get(agent).name
            zone = self._timezone
            plan = parse_schedule(kind.lower(), spec, timezone=zone, now=self._clock.now())
        except (AgentNotFound, SchedulerError) as exc:
            raise ToolError(str(exc)) from exc
        if self._redact(text) != text:
            raise ToolError(messages.JOB_HOLDS_SECRET)
        now = self._clock.now()
        job = Job(
            id=secrets.token_hex(3),
            agent=name,
            input=text,
            trigger=plan.kind,
            spec=plan.spec,
            timezone=plan.timezone,
            chat_id=chat,
            created_by=user,
            active_since=now,
            created_at=now,
            updated_at=now,
        )
        await self._scheduler.create(job)
        self._audit.record(user, "job.created", job.id, agent=name, plan=job.spec, by="tool")
        return f"job {job.id} created: {plan.kind} {plan.spec} runs {name}"

    async def listing(self, chat: str) -> str:
        if self._scheduler is None:
            raise ToolError("the scheduler is switched off")
        rows, _ = await self._scheduler.store.listed(limit=200)
        mine = [job for job in rows if chat in (job.chat_id, job.report_to)]
        return "\n".join(
            f"{job.id} {job.state} {job.trigger} {job.spec} {job.agent}: {job.input[:80]}"
            for job in mine
        )


def toolbox_for(config: Config, *, notes: NoteStore, host: Host) -> ToolBox:
    """Every tool the config can reach: built-ins, `[[tools]]`, entry-point plugins.

    `schedule_job` and `list_jobs` exist only while the scheduler is switched on. The
    tools scrub with the scrubber each call's context carries (`ToolCallContext.redact`).
    """
    services = Services(
        notes=notes,
        delegate=host,
        notifier=host,
        jobs=host if config.scheduler.enabled else None,
        files=host,
        max_hops=config.deck.max_hops,
    )
    # `<server>__<tool>` of an MCP server: its tools are known once it runs (`roster.mcp`).
    servers = {server.name for server in config.mcp_servers}
    policies = {k: v for k, v in config.tool_policy.items() if server_of(k) not in servers}
    built = build_toolbox(services, declared=config.tools, policies=policies)
    for problem in built.problems:
        log.warning("tools: %s", problem)
    return built.toolbox
