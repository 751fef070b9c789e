"""`schedule_job` and `list_jobs`: agents create and read scheduled jobs.

They talk to a small `JobBook` protocol; the scheduler side fulfils it and the bot
wires it in. Creating a job waits for approval by default: a model should not leave
recurring work behind unasked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from roster.spec import ApprovalMode, Policy
from roster.toolkit.schema import validate_schema
from roster.tools import Tool, ToolCallContext


class JobBook(Protocol):
    async def schedule(self, *, agent: str, text: str, when: str, chat: str, user: str) -> str:
        """Create a job; return a one-line confirmation (or raise `ToolError`)."""
        ...

    async def listing(self, chat: str) -> str:
        """The jobs reporting to this chat, one per line."""
        ...


class ScheduleJobTool(Tool):
    name = "schedule_job"
    description = (
        "Schedule an agent to run an input later or repeatedly, reporting to this chat. "
        "`when`: 'every 30m', 'cron 0 9 * * 1-5' or 'at 2025-01-31 09:00'."
    )
    parameters: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "properties": {
            "agent": {"type": "string", "minLength": 1},
            "input": {"type": "string", "minLength": 1},
            "when": {"type": "string", "minLength": 2},
        },
        "required": ["agent", "input", "when"],
        "additionalProperties": False,
    }

    def __init__(self, jobs: JobBook, policy: Policy | None = None) -> None:
        self._jobs = jobs
        self.policy = policy or Policy(approval=ApprovalMode.ALWAYS)

    def validate(self, arguments: dict[str, Any]) -> None:
        validate_schema(self.parameters, arguments)

    async def call(self, arguments: dict[str, Any], ctx: ToolCallContext) -> str:
        return await self._jobs.schedule(
            agent=arguments["agent"],
            text=arguments["input"],
            when=arguments["when"],
            chat=ctx.chat_id,
            user=ctx.user,
        )


class ListJobsTool(Tool):
    name = "list_jobs"
    description = "List the scheduled jobs that report to this chat."
    parameters: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }

    def __init__(self, jobs: JobBook) -> None:
        self._jobs = jobs

    async def call(self, arguments: dict[str, Any], ctx: ToolCallContext) -> str:
        return await self._jobs.listing(ctx.chat_id) or "no jobs"
