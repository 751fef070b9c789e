"""Runs agents for chat: records the run, shows progress, suspends on approvals, reports."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from bot import logs, markdown, messages
from bot.delivery.postman import Postman
from bot.runs import orphans, outfiles
from bot.runs.approvals import Approvals
from bot.runs.brakes import Brakes, LiveRun
from bot.runs.cards import RERUN_OF
from bot.runs.conversation import Conversation
from bot.runs.progress import Progress
from bot.text import Rich, Style, bold, code, plain_text, pre, rich
from bot.types import Outgoing, Queued
from roster import attachments
from roster.agent import (
    Action,
    Agent,
    AgentRequest,
    Decision,
    Finished,
    NeedsApproval,
    Outcome,
    Received,
    Turn,
    Usage,
)
from roster.errors import AgentFailed, RosterError
from roster.process_tree import start_ticks
from roster.roster import Roster
from roster.spec import ClaudeAgentSpec, CodexAgentSpec, CommandAgentSpec
from storage.audit import AuditLog
from storage.clock import Clock
from storage.db import Database
from storage.errors import SecretGone
from storage.memory import Memory
from storage.models import Approval, Run, RunAttachment, RunState, ToolCall
from storage.processes import Processes
from storage.runs import ActiveRun, RunStore
from storage.scrubber import Scrubber, redact_tree
from storage.writer import WriteBehind

log = logging.getLogger(__name__)

MAX_RECORDED_RESULT = 4000  # of a tool call's result, kept with the run

Step = Callable[[LiveRun], Awaitable[Outcome]]

# The agents whose runs get a folder for files they send back (`bot.runs.outfiles`).
SENDS_FILES = (CommandAgentSpec, ClaudeAgentSpec, CodexAgentSpec)


@dataclass(frozen=True, slots=True)
class Origin:
    """Who asked, and where the answer goes."""

    chat: str
    user: str
    thread: str | None = None
    job_id: str | None = None
    run_id: str | None = None  # chosen in advance by the scheduler, whose claim names the run
    hops: tuple[str, ...] = ()  # the agents that handed this request on (router, delegation)
    update_key: str | None = None  # the update it answers: that update is never handled again
    files: tuple[Received, ...] = ()  # sent with the message, saved by `bot.intake.files`


class JobReporter(Protocol):
    """Delivers the result of a job's run (`bot.jobruns`): headline, retries, escalation."""

    async def report(
        self, run: ActiveRun, status: RunState, text: Rich, progress: Progress
    ) -> None: ...


class Runner:
    def __init__(
        self,
        *,
        db: Database,
        writer: WriteBehind,
        memory: Memory,
        audit: AuditLog,
        postman: Postman,
        roster: Roster,
        approvals: Approvals,
        clock: Clock,
        memory_turns: int,
        brakes: Brakes,
        processes: Processes,
        scrubber: Scrubber,
        job_reports: JobReporter,
        files_root: Path | None = None,
        file_limit: int = 20 * 1024 * 1024,
    ) -> None:
        self._runs = RunStore(db)
        # Where a command agent's run gets a folder for files it sends back (None: none).
        self._files_root = files_root
        self._file_limit = file_limit
        self._processes = processes  # runs name this process as their owner
        self._writer = writer
        self._memory = memory
        self._audit = audit
        self._postman = postman
        self._roster = roster
        self._approvals = approvals
        self._clock = clock
        self._memory_turns = memory_turns
        self._brakes = brakes
        self._conversation = Conversation(memory, default_turns=memory_turns)
        # Run rows, cards and approvals keep no secret's value; a waiting run's state
        # keeps them by reference (sealed) and gets them back when it resumes.
        self._scrubber = scrubber
        self._redact = scrubber.redact
        self._job_reports = job_reports
        self._active: dict[str, tuple[str, asyncio.Task[Any]]] = {}  # run id -> (agent, task)
        self._stop_reasons: dict[str, str] = {}  # run id -> why it was stopped, if not by /stop
        self._ended: dict[str, asyncio.Event] = {}  # run id -> set when it ends (`ended`)

    def ended(self, run_id: str) -> asyncio.Event:
        """An event set when the run ends (after an approval too); ask before it starts
        (`Origin.run_id`), and `forget_ended` when no longer waiting."""
        return self._ended.setdefault(run_id, asyncio.Event())

    def forget_ended(self, run_id: str) -> None:
        self._ended.pop(run_id, None)

    async def flush(self) -> None:
        """Wait until queued run rows are written (before reading them back)."""
        await self._writer.flush()

    def active(self) -> dict[str, str]:
        """Running work: run id -> agent name."""
        return {run_id: agent for run_id, (agent, _) in self._active.items()}

    def stop(self, agent: str | None, *, reason: str | None = None) -> int:
        """Cancel running work of one agent (or all); subprocess groups are killed.

        `reason` is told in the run's result ("stopped: <reason>."); without one, "stopped.".
        """
        hits = {
            run_id: task
            for run_id, (name, task) in self._active.items()
            if agent is None or name == agent
        }
        for run_id, task in hits.items():
            if reason is not None:
                self._stop_reasons.setdefault(run_id, reason)  # the first stop is the one told
            task.cancel()
        return len(hits)

    async def start(self, agent: Agent, origin: Origin, text: str) -> ActiveRun:
        text = attachments.as_input(agent.spec, text, origin.files)
        run = ActiveRun(
            id=origin.run_id or uuid.uuid4().hex,
            agent=agent.name,
            chat_id=origin.chat,
            thread_id=origin.thread,
            user_id=origin.user,
            job_id=origin.job_id,
            input=self._redact(text),
            started_at=self._clock.now(),
            owner=self._processes.me,
            hops=origin.hops,
            text=text,
            update_key=origin.update_key,
        )
        run.row_written = self._writer.insert(Run, run.row())
        for file in origin.files:  # listed on the run's dashboard page
            self._writer.insert(RunAttachment, _attachment_row(run, file))
        # Cut after scrubbing: a value cut in two would no longer be found.
        self._audit.record(
            origin.user, "run.started", run.id, agent=agent.name, input=run.input[:500]
        )
        await self._begin(run, agent, text, origin.files)
        return run

    async def _begin(
        self, run: ActiveRun, agent: Agent, text: str, files: tuple[Received, ...] = ()
    ) -> None:
        """Check the brakes and the agent's own gate, then run (or suspend)."""
        history = await self._history(agent, run)
        request = AgentRequest(
            run.id,
            run.chat_id,
            run.user_id,
            text,
            history,
            hops=run.hops,
            thread=run.thread_id,
            files=files,
            outbox=await self._outbox_for(run, agent),
        )
        try:
            gate = self._brakes.budget_gate(run) or agent.gate(request)
        except RosterError as exc:
            text_ = rich(bold(agent.name), f": {exc}")
            await self._end(run, self._progress(run), RunState.FAILED, text_, error=str(exc))
            return
        if gate is not None:
            await self._suspend(run, agent, gate)
        else:
            await self._execute(run, agent, lambda live: agent.start(request, live))

    async def resume(self, approval: Approval, decision: Decision) -> None:
        """Continue the run an approval held, in this process or after a restart."""
        if decision.approved and self._brakes.budgets.extend(Action.from_json(approval.action)):
            self._audit.record(
                decision.by, "budget.extended", approval.agent, action=approval.action
            )
        if approval.run_id is None or approval.run_id in self._active:
            return  # a live run (`_ask`) takes its decision itself
        await self._writer.flush()
        # Taken at once, not written behind: one process resumes it, and a crash once it
        # runs leaves it `running` (reported), never `waiting` with its decision taken.
        stored = await self._runs.claim_waiting(approval.run_id, self._processes.me)
        if stored is None:
            log.warning(
                "approval %s decided, but run %s is not waiting", approval.id, approval.run_id
            )
            return
        try:
            run = ActiveRun.of(stored, unseal=self._scrubber.unseal)
        except SecretGone as exc:  # deleted since: nothing of this request runs
            await self._gone(ActiveRun.of(stored), exc)
            return
        agent = self._roster.get(run.agent)
        state = dict(run.state)
        run.status, run.owner = RunState.RUNNING, self._processes.me  # resumed here, run here
        if state.get(RERUN_OF) and not decision.approved:
            self._declined_rerun(run, decision)
            return
        if state.get("stage") == "start":  # held before it began (a spent budget)
            if decision.approved:
                await self._begin(run, agent, run.text)
            else:
                await self._refused(run, agent, decision)
            return
        current = agent.recheck(self._request(run), state)
        if current is not None and self._shown(current.action).digest() != approval.action_hash:
            self._audit.record(decision.by, "approval.stale", approval.id, run=run.id)
            await self._postman.send(
                Outgoing.plain(run.chat_id, messages.ACTION_CHANGED, run.thread_id)
            )
            await self._suspend(run, agent, current)
            return
        await self._continue(run, agent, state, decision)

    async def _continue(
        self, run: ActiveRun, agent: Agent, state: dict[str, Any], decision: Decision
    ) -> None:
        request = self._request(run)
        await self._execute(run, agent, lambda live: agent.resume(request, state, decision, live))

    def _request(self, run: ActiveRun) -> AgentRequest:
        """The request a stored run goes on with (its history is in its stored state)."""
        return AgentRequest(
            run.id, run.chat_id, run.user_id, run.text, hops=run.hops, thread=run.thread_id
        )

    async def _gone(self, run: ActiveRun, gone: SecretGone) -> None:
        self._audit.record(run.user_id, "run.secret_gone", run.id, secret=gone.label)
        text = rich(bold(run.agent), f": {gone}")
        await self._end(run, self._progress(run), RunState.FAILED, text, error=str(gone))

    def _declined_rerun(self, run: ActiveRun, decision: Decision) -> None:
        """A Run again offer declined or expired: its card says so; nothing ran."""
        now = self._clock.now()
        values = {"id": run.id, "status": RunState.DENIED, "finished_at": now}
        self._writer.update(Run, "id", values)
        self._audit.record(decision.by, "run.denied", run.id, agent=run.agent)

    async def _refused(self, run: ActiveRun, agent: Agent, decision: Decision) -> None:
        reason = f": {decision.reason}" if decision.reason else ""
        text = rich(bold(agent.name), f": denied by {decision.by}{reason}. Nothing ran.")
        await self._end(run, self._progress(run), RunState.DENIED, text)

    async def _stored(self, run: ActiveRun) -> None:
        """Wait until the run's row and the update's inbox row are committed; raise if the
        run's row was refused (then nothing may act: a crash would leave no trace of it)."""
        await self._writer.flush()
        if run.row_written is not None:
            await asyncio.shield(run.row_written)

    async def _history(self, agent: Agent, run: ActiveRun) -> tuple[Turn, ...]:
        return await self._conversation.history(agent, run.chat_id)

    async def _execute(self, run: ActiveRun, agent: Agent, step: Step) -> None:
        progress = self._progress(run)
        current = asyncio.current_task()
        assert current is not None
        self._active[run.id] = (agent.name, current)
        where = logs.enter(run=run.id, chat=run.chat_id)  # JSON log lines name the run
        progress.begin()
        live = self._brakes.live(
            run,
            progress,
            record_call=self._call_recorder(run),
            stored=lambda: self._stored(run),
            spawned=self._spawn_recorder(run),
            ask=lambda gate: self._ask(run, agent, gate),
        )
        try:
            outcome = await _within(agent.spec.run_timeout, step(live))
        except asyncio.CancelledError:
            reason = self._stop_reasons.get(run.id)
            said = f": stopped: {reason}." if reason else ": stopped."
            await self._end(run, progress, RunState.CANCELLED, rich(bold(agent.name), said))
            raise
        except (AgentFailed, RosterError) as exc:
            text = rich(bold(agent.name), f": {exc}")
            await self._end(
                run,
                progress,
                RunState.FAILED,
                text,
                error=str(exc),
                cost=live.cost,
                acted=live.acted,
            )
            extension = self._brakes.extension_gate(live, run)
            if extension is not None:
                await self._approvals.request(run, extension)
            return
        except Exception as exc:
            log.exception("run %s of %s failed", run.id, agent.name)
            text = rich(
                bold(agent.name),
                ": failed with an internal error (",
                code(type(exc).__name__),
                "); see the log.",
            )
            await self._end(run, progress, RunState.FAILED, text, error=repr(exc))
            return
        finally:
            self._active.pop(run.id, None)
            self._stop_reasons.pop(run.id, None)
            logs.leave(where)
        if isinstance(outcome, NeedsApproval):
            await progress.finish(rich(bold(agent.name), ": waiting for approval."))
            await self._suspend(run, agent, outcome)
            return
        await self._complete(run, agent, progress, outcome, live)

    async def _ask(self, run: ActiveRun, agent: Agent, gate: NeedsApproval) -> Decision:
        """A card for a live run (a CLI's permission prompt): post it, wait for a decision."""
        shown = replace(gate, action=self._shown(gate.action))
        grant = await self._approvals.granted(run.chat_id, run.agent, shown.action.digest())
        if grant is not None:
            self._audit.record(run.user_id, "approval.reused", grant.id, run=run.id)
            return Decision(approved=True, by=grant.decided_by or "an approver")
        preview = self._redact(await agent.preview(gate.action))
        await self._stored(run)  # the card names the run: it must be stored first
        approval = await self._approvals.request(run, shown, preview)
        return await self._approvals.wait(approval.id)

    def _spawn_recorder(self, run: ActiveRun) -> Callable[[int], None]:
        """A command's process group, written at once: a crash from then on leaves a group
        the next start can find and stop (`bot.runs.orphans`)."""

        def record(pid: int) -> None:
            values = {
                "id": run.id,
                "process_group": pid,
                "process_started": start_ticks(pid),
                "process_host": orphans.host(),
            }
            self._writer.update(Run, "id", values, urgent=True)

        return record

    def _call_recorder(self, run: ActiveRun) -> Callable[[str, str, str, str], None]:
        """Tool calls are written with the run's other rows (the run page lists them)."""

        def record(tool: str, arguments: str, result: str, status: str) -> None:
            if status == "refused":  # the egress policy turned it down: worth an audit row
                self._audit.record(
                    run.user_id, "tool.refused", run.id, tool=tool, reason=result[:300]
                )
            row = ToolCall(
                run_id=run.id,
                tool=tool[:100],
                arguments=_arguments(arguments, self._redact),
                result=self._redact(result)[:MAX_RECORDED_RESULT],
                status=status,
                created_at=self._clock.now(),
            )
            self._writer.insert(ToolCall, row.model_dump(exclude={"id"}))

        return record

    def _progress(self, run: ActiveRun) -> Progress:
        return Progress(
            postman=self._postman, chat=run.chat_id, thread=run.thread_id, agent=run.agent
        )

    async def _suspend(self, run: ActiveRun, agent: Agent, gate: NeedsApproval) -> None:
        """Store the run and post the card; or go on at once if this chat already said yes.

        The approval stores the action as the card shows it (a secret's value as
        `[redacted:NAME]`) and binds to its hash; the run's state keeps the values by
        reference, so what runs once approved is what was asked, values and all.
        """
        shown = replace(gate, action=self._shown(gate.action))
        grant = None
        if gate.action.kind != "budget":
            grant = await self._approvals.granted(run.chat_id, run.agent, shown.action.digest())
        if grant is not None:
            self._audit.record(run.user_id, "approval.reused", grant.id, run=run.id)
            by = grant.decided_by or "an approver"
            await self._continue(run, agent, gate.state, Decision(approved=True, by=by))
            return
        preview = self._redact(await agent.preview(gate.action))
        run.status = RunState.WAITING
        state = self._scrubber.seal(run.suspended_state(gate.state))
        self._writer.update(Run, "id", {"id": run.id, "status": RunState.WAITING, "state": state})
        await self._writer.flush()  # the run must be stored before anyone can press
        await self._approvals.request(run, shown, preview)

    def _shown(self, action: Action) -> Action:
        """The action as cards show it and approvals store it: no secret's value."""
        return Action.from_json(self._scrubber.redact_tree(action.to_json()))

    async def _complete(
        self, run: ActiveRun, agent: Agent, progress: Progress, outcome: Finished, live: LiveRun
    ) -> None:
        status = RunState.DONE if outcome.ok else RunState.FAILED
        if outcome.denied:
            status = RunState.DENIED
        await self._end(
            run,
            progress,
            status,
            # Scrubbed whole before Markdown cuts it into spans: a secret's value split by
            # a mark (`**abc**def`) would escape a scrub of each span.
            result_text(agent, replace(outcome, text=self._redact(outcome.text)), progress.elapsed),
            output=outcome.text,
            exit_code=outcome.exit_code,
            tokens=(outcome.usage.tokens_in, outcome.usage.tokens_out),
            cost=live.cost,
            acted=live.acted,
        )
        self._conversation.record(agent, run.chat_id, run.input, outcome.text)
        if isinstance(agent.spec, SENDS_FILES):  # only their runs have an outbox folder
            await self._send_files(run)
        await self._conversation.fold(agent, run.chat_id)  # after the answer is out

    async def _outbox_for(self, run: ActiveRun, agent: Agent) -> str | None:
        """The folder a command, Claude Code or Codex run may leave files in for the chat."""
        if self._files_root is None or not isinstance(agent.spec, SENDS_FILES):
            return None
        return str(await asyncio.to_thread(outfiles.prepare, self._files_root, run.id))

    async def _send_files(self, run: ActiveRun) -> None:
        if self._files_root is None:
            return
        folder = self._files_root / outfiles.FOLDER / run.id
        found = await asyncio.to_thread(outfiles.collect, folder, self._file_limit)
        if found.files or found.skipped:
            self._audit.record(
                run.user_id,
                "run.files_sent",
                run.id,
                names=[p.name for p in found.files],
                skipped=found.skipped,
            )
            await outfiles.send(
                self._postman,
                found,
                run_id=run.id,
                agent=run.agent,
                chat=run.chat_id,
                thread=run.thread_id,
            )

    async def _end(
        self,
        run: ActiveRun,
        progress: Progress,
        status: RunState,
        text: Rich,
        *,
        output: str = "",
        error: str | None = None,
        exit_code: int | None = None,
        tokens: tuple[int, int] = (0, 0),
        cost: float = 0.0,
        acted: bool = False,
    ) -> None:
        """Record how the run ended and tell its chat.

        The end is written after the answer went out (or into the outbox): a run whose end
        is stored has been answered, and a crash between the two leaves a run reported as
        cut short, never a silent one. After an effect the end is written at once.
        """
        values = {
            "status": status,
            "output": self._redact(output),
            "error": None if error is None else self._redact(error),
            "exit_code": exit_code,
            "tokens_in": tokens[0],
            "tokens_out": tokens[1],
            "cost": cost,
            "finished_at": self._clock.now(),
        }
        self._audit.record(
            run.user_id,
            f"run.{status}",
            run.id,
            agent=run.agent,
            exit_code=exit_code,
            tokens_in=tokens[0],
            tokens_out=tokens[1],
            cost=cost,
        )
        await self._brakes.after_run(run, status)
        if run.job_id is not None:
            self._writer.update(Run, "id", {"id": run.id, **values})  # the report reads it
            await self._job_reports.report(run, status, text, progress)
            return
        try:
            if isinstance(await progress.finish(text, answer=output), Queued):  # the outbox has it
                log.info("the result of run %s waits in the outbox", run.id)
        except Exception:
            log.exception("could not deliver the result of run %s", run.id)
        finally:  # also when a stop cancels the send: the outbox has the message by then
            self._writer.update(Run, "id", {"id": run.id, **values}, urgent=acted)
            if (ended := self._ended.pop(run.id, None)) is not None:
                ended.set()

    def record_call(self, agent: str, origin: Origin, text: str, answer: str, usage: Usage) -> None:
        """Record a model call made outside a run (the router's), so /cost and budgets see it."""
        now = self._clock.now()
        run = Run(
            id=uuid.uuid4().hex,
            agent=agent,
            chat_id=origin.chat,
            thread_id=origin.thread,
            user_id=origin.user,
            input=self._redact(text),
            output=self._redact(answer),
            status=RunState.DONE,
            tokens_in=usage.tokens_in,
            tokens_out=usage.tokens_out,
            cost=usage.cost,
            started_at=now,
        )
        # Inserted in the shape of every other run row (a batch is one executemany).
        self._writer.insert(Run, run.model_dump())
        self._writer.update(Run, "id", {"id": run.id, "finished_at": now})
        budgets = self._brakes.budgets
        tokens = usage.tokens_in + usage.tokens_out
        budgets.spend(budgets.scopes(agent, origin.chat, None), tokens, usage.cost)


def _arguments(raw: str, redact: Callable[[str], str]) -> dict[str, Any]:
    """A tool call's arguments as stored, scrubbed: the JSON object the model sent (parsed
    first, so a value JSON escaped is found too), or the raw text."""
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return {"raw": redact(raw)[:MAX_RECORDED_RESULT]}
    if not isinstance(value, dict):
        return {"raw": redact(raw)[:MAX_RECORDED_RESULT]}
    scrubbed: dict[str, Any] = redact_tree(value, redact)
    return scrubbed


async def _within(seconds: float, work: Awaitable[Outcome]) -> Outcome:
    """Await a run's work under its wall-clock limit; our own expiry is the run's failure."""
    limit = asyncio.timeout(seconds)
    try:
        async with limit:
            return await work
    except TimeoutError:
        if limit.expired():
            raise AgentFailed(f"ran longer than {seconds:g} s and was stopped.") from None
        raise


def result_text(agent: Agent, outcome: Finished, seconds: float) -> Rich:
    body = outcome.text.strip() or "(no output)"
    if outcome.exit_code is not None:
        footer = f"exit {outcome.exit_code} · {seconds:.1f} s"
    else:  # a model's answer: which model gave it, when a fallback did
        footer = f"({outcome.answered_by})" if outcome.answered_by else ""
    if agent.spec.renders_markdown:
        shown = markdown.to_rich(body)
        lead = "\n" if _starts_block(shown) else ": "
        return rich(bold(agent.name), lead, *shown, "\n" + footer if footer else "")
    if outcome.exit_code is None:
        return rich(bold(agent.name), ": ", body, "\n" + footer if footer else "")
    return rich(bold(agent.name), "\n", pre(body), footer)


def _attachment_row(run: ActiveRun, file: Received) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "name": file.name[:255],
        "kind": file.kind,
        "size": file.size,
        "path": file.path[:1000],
        "created_at": run.started_at,
    }


def _starts_block(text: Rich) -> bool:
    """Whether Markdown output begins with a block (a code block, a quote, several
    paragraphs) that reads better on its own line after the agent's name."""
    first = text[0] if text else None
    return first is not None and (
        first.style is Style.PRE or first.quote or "\n" in plain_text(text).strip()
    )
