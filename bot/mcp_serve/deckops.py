"""What an MCP client may ask of the deck: the same actions chat commands take.

Every call acts as the configured caller (`[mcp] user`), whose role is looked up as
for a chat message and checked before anything happens (a refusal is audited); runs
report to `[mcp] chat`, where their approval cards wait for a press like any other.
Nothing here knows MCP: `bot.mcp_serve.server` turns these into MCP tools.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot import messages
from bot.config import Role
from bot.deck import Deck
from bot.runs.cards import describe
from bot.runs.runner import Origin
from bot.toolhost import ToolHost
from roster.agent import Action
from roster.errors import AgentNotFound, AgentUnavailable, ToolError
from storage.models import RunState
from storage.runs import RunStore

MAX_TEXT = 16_000


class OperationRefused(Exception):
    """The caller may not do this (role), or asked for something that is not there."""


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    role: Role
    description: str
    schema: dict[str, Any]
    run: Callable[[DeckOps, dict[str, Any]], Awaitable[str]]


class DeckOps:
    """The deck as one caller sees it."""

    def __init__(self, deck: Deck, *, user: str, chat: str) -> None:
        self.deck = deck
        self.user = user
        self.chat = chat
        # Jobs are created as an agent's `schedule_job` tool creates them (checks, audit).
        self._jobs = ToolHost(
            roster=deck.roster,
            runner=deck.runner,
            postman=deck.postman,
            audit=deck.audit,
            db=deck.db,
            clock=deck.clock,
            redact=deck.vault.redact,
            timezone=deck.config.deck.timezone,
            scheduler=deck.scheduler,
        )

    async def perform(self, name: str, arguments: dict[str, Any]) -> str:
        """Run one operation for the caller; `OperationRefused` when its role is not enough."""
        operation = OPERATIONS.get(name)
        if operation is None:
            raise OperationRefused(f"no operation named {name!r}")
        role = self.deck.access.role(self.user, self.chat)
        if role is None or not role.allows(operation.role):
            self.deck.audit.record(self.user, "refused.role", f"mcp:{name}", needed=operation.role)
            raise OperationRefused(messages.needs_role(f"use {name}", operation.role))
        self.deck.audit.record(self.user, "mcp.call", name)
        return await operation.run(self, arguments)

    async def list_agents(self, arguments: dict[str, Any]) -> str:
        lines = []
        for agent in self.deck.roster:
            reason = self.deck.roster.unavailable_reason(agent)
            state = f"unavailable: {reason}" if reason else "ready"
            kind = getattr(agent.spec, "kind", "?")
            lines.append(f"{agent.name} ({kind}, {state}) {agent.spec.description}".rstrip())
        return "\n".join(lines) or "no agents"

    async def ask_agent(self, arguments: dict[str, Any]) -> str:
        """Run the agent; answer when it ends, approvals in chat included (bounded)."""
        deck = self.deck
        try:
            agent = deck.roster.runnable(str(arguments.get("agent", "")))
        except (AgentNotFound, AgentUnavailable) as exc:
            raise OperationRefused(str(exc)) from None
        text = str(arguments.get("text", "")).strip()
        if not text:
            raise OperationRefused("`text` is empty: say what the agent should do")
        run_id = uuid.uuid4().hex
        ended = deck.runner.ended(run_id)
        origin = Origin(chat=self.chat, user=self.user, run_id=run_id)
        # A deck task, as for a chat message: a stop lets it finish, and a client that
        # goes away does not cut the run short (its answer is posted to the chat).
        running = deck.tasks.spawn(deck.runner.start(agent, origin, text), name=f"mcp:{run_id}")
        try:
            async with asyncio.timeout(deck.config.mcp.wait_seconds):
                await asyncio.shield(running)  # started, and then ended or suspended
                await ended.wait()
        except TimeoutError:
            pass  # answered below from the run's row: still running, or waiting
        finally:
            deck.runner.forget_ended(run_id)
        return await self._outcome(run_id, agent.name)

    async def _outcome(self, run_id: str, agent: str) -> str:
        await self.deck.runner.flush()
        run = await RunStore(self.deck.db).get(run_id)
        if run is None:
            return f"the run of {agent} was not recorded"
        if run.status == RunState.DONE:
            return run.output[:MAX_TEXT] or "(no output)"
        if run.status in (RunState.WAITING, RunState.RUNNING):
            return (
                f"run {run_id[:8]} of {agent} is still {run.status} (an approval may wait in "
                f"{self.chat}); its result will be posted there"
            )
        why = f": {run.error}" if run.error else ""
        raise OperationRefused(f"{agent} ended {run.status}{why}"[:2000])

    async def list_runs(self, arguments: dict[str, Any]) -> str:
        await self.deck.runner.flush()
        agent = str(arguments.get("agent") or "") or None
        rows = await RunStore(self.deck.db).recent(agent, limit=20)
        return (
            "\n".join(
                f"{run.id[:8]} {run.agent} {run.status} {run.started_at:%Y-%m-%d %H:%M} "
                f"{run.input[:80]}"
                for run in rows
            )
            or "no runs yet"
        )

    async def list_approvals(self, arguments: dict[str, Any]) -> str:
        pending = await self.deck.approvals.pending()
        return (
            "\n".join(
                f"{row.id} {row.agent}: {describe(Action.from_json(row.action))} "
                f"(asked by {row.requested_by} in {row.chat_id})"
                for row in pending
            )
            or "nothing waits for approval"
        )

    async def list_jobs(self, arguments: dict[str, Any]) -> str:
        if self.deck.scheduler is None:
            raise OperationRefused("the scheduler is switched off")
        rows, _ = await self.deck.scheduler.store.listed(limit=200)
        return (
            "\n".join(
                f"{job.id} {job.state} {job.trigger} {job.spec} {job.agent}: {job.input[:80]}"
                for job in rows
            )
            or "no jobs"
        )

    async def create_job(self, arguments: dict[str, Any]) -> str:
        try:
            return await self._jobs.schedule(
                agent=str(arguments.get("agent", "")),
                text=str(arguments.get("text", "")),
                when=str(arguments.get("when", "")),
                chat=self.chat,
                user=self.user,
            )
        except ToolError as exc:
            raise OperationRefused(str(exc)) from None


def _schema(properties: dict[str, str], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {key: {"type": "string", "description": d} for key, d in properties.items()},
        "required": list(required),
        "additionalProperties": False,
    }


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation(
            "list_agents",
            Role.VIEWER,
            "The deck's agents: kind, whether each can run now, and what it is for.",
            _schema({}),
            DeckOps.list_agents,
        ),
        Operation(
            "ask_agent",
            Role.OPERATOR,
            "Ask one agent and wait for its answer. Risky actions wait for an approver's "
            "press in the deck's chat; the answer then comes once decided.",
            _schema({"agent": "the agent's name", "text": "what to ask"}, ("agent", "text")),
            DeckOps.ask_agent,
        ),
        Operation(
            "list_runs",
            Role.VIEWER,
            "Recent runs, newest first (optionally of one agent).",
            _schema({"agent": "only this agent's runs"}),
            DeckOps.list_runs,
        ),
        Operation(
            "list_approvals",
            Role.VIEWER,
            "Actions that wait for an approver's decision.",
            _schema({}),
            DeckOps.list_approvals,
        ),
        Operation(
            "list_jobs",
            Role.VIEWER,
            "Scheduled jobs.",
            _schema({}),
            DeckOps.list_jobs,
        ),
        Operation(
            "create_job",
            Role.ADMIN,
            "Schedule an agent: `when` is 'every 30m', 'cron 0 9 * * 1-5' or "
            "'at 2030-01-01 09:00'.",
            _schema(
                {"agent": "the agent's name", "text": "its input", "when": "the schedule"},
                ("agent", "text", "when"),
            ),
            DeckOps.create_job,
        ),
    )
}
