"""Runs agents for chat: records the run, shows progress, suspends on approvals, reports."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select, update

from bot.approvals import Approvals
from bot.conversation import Conversation
from bot.postman import Postman
from bot.progress import Progress
from bot.text import Rich, bold, code, pre, rich
from roster.agent import Agent, AgentRequest, Decision, Finished, NeedsApproval, Outcome, Turn
from roster.errors import AgentFailed, RosterError
from roster.roster import Roster
from storage.audit import AuditLog
from storage.clock import Clock
from storage.db import Database
from storage.memory import Memory
from storage.models import Approval, Run, RunState
from storage.writer import WriteBehind

log = logging.getLogger(__name__)

Step = Callable[[Progress], Awaitable[Outcome]]


@dataclass(frozen=True, slots=True)
class Origin:
    """Who asked, and where the answer goes."""

    chat: str
    user: str
    thread: str | None = None
    job_id: str | None = None


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
        redact: Callable[[str], str] = lambda text: text,
    ) -> None:
        self._db = db
        self._writer = writer
        self._memory = memory
        self._audit = audit
        self._postman = postman
        self._roster = roster
        self._approvals = approvals
        self._clock = clock
        self._memory_turns = memory_turns
        self._conversation = Conversation(memory, default_turns=memory_turns)
        self._redact = redact  # run rows keep no secret's value
        self._active: dict[str, tuple[str, asyncio.Task[Any]]] = {}  # run id -> (agent, task)

    async def flush(self) -> None:
        """Wait until queued run rows are written (before reading them back)."""
        await self._writer.flush()

    def active(self) -> dict[str, str]:
        """Running work: run id -> agent name."""
        return {run_id: agent for run_id, (agent, _) in self._active.items()}

    def stop(self, agent: str | None) -> int:
        """Cancel running work of one agent (or all); subprocess groups are killed."""
        hits = [task for name, task in self._active.values() if agent is None or name == agent]
        for task in hits:
            task.cancel()
        return len(hits)

    async def start(self, agent: Agent, origin: Origin, text: str) -> Run:
        run = Run(
            id=uuid.uuid4().hex,
            agent=agent.name,
            chat_id=origin.chat,
            thread_id=origin.thread,
            user_id=origin.user,
            job_id=origin.job_id,
            input=self._redact(text),
            started_at=self._clock.now(),
        )
        self._writer.insert(Run, run.model_dump())
        self._audit.record(origin.user, "run.started", run.id, agent=agent.name, input=text[:500])
        request = AgentRequest(
            run.id, origin.chat, origin.user, text, await self._history(agent, run)
        )
        try:
            gate = agent.gate(request)
        except RosterError as exc:
            progress = self._progress(run)
            await self._end(
                run, progress, RunState.FAILED, rich(bold(agent.name), f": {exc}"), error=str(exc)
            )
            return run
        if gate is not None:
            await self._suspend(run, gate)
        else:
            await self._execute(run, agent, lambda progress: agent.start(request, progress))
        return run

    async def resume(self, approval: Approval, decision: Decision) -> None:
        """Continue the run an approval held, in this process or after a restart."""
        if approval.run_id is None:
            return
        await self._writer.flush()
        async with self._db.session() as session:
            run = await session.get(Run, approval.run_id)
        if run is None or run.status != RunState.WAITING:
            log.warning(
                "approval %s decided, but run %s is not waiting", approval.id, approval.run_id
            )
            return
        agent = self._roster.get(run.agent)
        request = AgentRequest(run.id, run.chat_id, run.user_id, run.input)
        state = dict(run.state)
        run.status = RunState.RUNNING
        self._writer.submit(_set(run.id, status=RunState.RUNNING, state={}))
        await self._execute(
            run, agent, lambda progress: agent.resume(request, state, decision, progress)
        )

    async def _history(self, agent: Agent, run: Run) -> tuple[Turn, ...]:
        return await self._conversation.history(agent, run.chat_id)

    async def _execute(self, run: Run, agent: Agent, step: Step) -> None:
        progress = self._progress(run)
        current = asyncio.current_task()
        assert current is not None
        self._active[run.id] = (agent.name, current)
        progress.begin()
        try:
            outcome = await step(progress)
        except asyncio.CancelledError:
            await self._end(run, progress, RunState.CANCELLED, rich(bold(agent.name), ": stopped."))
            raise
        except (AgentFailed, RosterError) as exc:
            await self._end(
                run, progress, RunState.FAILED, rich(bold(agent.name), f": {exc}"), error=str(exc)
            )
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
        if isinstance(outcome, NeedsApproval):
            await progress.finish(rich(bold(agent.name), ": waiting for approval."))
            await self._suspend(run, outcome)
            return
        await self._complete(run, agent, progress, outcome)

    def _progress(self, run: Run) -> Progress:
        return Progress(
            postman=self._postman, chat=run.chat_id, thread=run.thread_id, agent=run.agent
        )

    async def _suspend(self, run: Run, gate: NeedsApproval) -> None:
        run.status = RunState.WAITING
        self._writer.submit(_set(run.id, status=RunState.WAITING, state=gate.state))
        await self._writer.flush()  # the run must be stored before anyone can press
        await self._approvals.request(run, gate)

    async def _complete(
        self, run: Run, agent: Agent, progress: Progress, outcome: Finished
    ) -> None:
        status = RunState.DONE if outcome.ok else RunState.FAILED
        if outcome.exit_code is None and not outcome.ok and outcome.text.startswith("Denied by"):
            status = RunState.DENIED
        await self._end(
            run,
            progress,
            status,
            result_text(agent, outcome, progress.elapsed),
            output=outcome.text,
            exit_code=outcome.exit_code,
            tokens=(outcome.usage.tokens_in, outcome.usage.tokens_out),
        )
        self._conversation.record(agent, run.chat_id, run.input, outcome.text)
        await self._conversation.fold(agent, run.chat_id)  # after the answer is out

    async def _end(
        self,
        run: Run,
        progress: Progress,
        status: RunState,
        text: Rich,
        *,
        output: str = "",
        error: str | None = None,
        exit_code: int | None = None,
        tokens: tuple[int, int] = (0, 0),
    ) -> None:
        values = {
            "status": status,
            "output": self._redact(output),
            "error": None if error is None else self._redact(error),
            "exit_code": exit_code,
            "tokens_in": tokens[0],
            "tokens_out": tokens[1],
            "finished_at": self._clock.now(),
        }
        self._writer.update(Run, "id", {"id": run.id, **values})
        self._audit.record(
            run.user_id, f"run.{status}", run.id, agent=run.agent, exit_code=exit_code
        )
        try:
            await progress.finish(text)
        except Exception:
            log.exception("could not deliver the result of run %s", run.id)

    async def mark_interrupted(self) -> list[Run]:
        """Runs that were executing when the process died: mark them, so they are reported."""
        async with self._db.session() as session:
            rows = list(
                (await session.exec(select(Run).where(Run.status == RunState.RUNNING))).all()
            )
            if rows:
                await session.exec(
                    update(Run)
                    .where(col(Run.status) == RunState.RUNNING)
                    .values(status=RunState.INTERRUPTED, finished_at=self._clock.now())
                )
                await session.commit()
        return rows


def result_text(agent: Agent, outcome: Finished, seconds: float) -> Rich:
    body = outcome.text.strip() or "(no output)"
    if outcome.exit_code is None:
        return rich(bold(agent.name), ": ", body)
    footer = f"exit {outcome.exit_code} · {seconds:.1f} s"
    return rich(bold(agent.name), "\n", pre(body), footer)


def _set(run_id: str, **values: Any) -> Callable[[Any], Awaitable[None]]:
    async def op(session: Any) -> None:
        await session.exec(update(Run).where(col(Run.id) == run_id).values(**values))

    return op
