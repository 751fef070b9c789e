"""`ask_agent`: an agent asks another agent and uses its answer.

A request carries its chain of agents (`AgentRequest.hops`). A delegation that would
revisit an agent already in the chain (a cycle) or make the chain longer than the hop
limit is refused with a text the calling model can act on; nothing runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

from roster.toolkit.schema import validate_schema
from roster.tools import Tool, ToolCallContext

DEFAULT_MAX_HOPS = 5
ARROW = " → "


class Delegate(Protocol):
    """The bot side: run `agent` on `text` as part of the caller's request."""

    async def ask(self, agent: str, text: str, ctx: ToolCallContext) -> str: ...


def chain_of(ctx: ToolCallContext) -> tuple[str, ...]:
    """The agents so far, the caller last."""
    return (*ctx.hops, ctx.agent)


def refusal(chain: Sequence[str], target: str, max_hops: int) -> str | None:
    """Why `chain` may not go on to `target`, or None when it may."""
    path = ARROW.join([*chain, target])
    if target in chain:
        return f"refused: {path} would be a cycle ({target} is already in this request)"
    if len(chain) > max_hops:
        return f"refused: {path} is more than the hop limit of {max_hops} delegations"
    return None


class AskAgentTool(Tool):
    name = "ask_agent"
    description = (
        "Ask another agent of the roster and get its answer. Use it when another agent "
        "is the specialist for part of the task."
    )
    parameters: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "properties": {
            "agent": {"type": "string", "minLength": 1},
            "text": {"type": "string", "minLength": 1},
        },
        "required": ["agent", "text"],
        "additionalProperties": False,
    }

    def __init__(self, delegate: Delegate, *, max_hops: int = DEFAULT_MAX_HOPS) -> None:
        self._delegate = delegate
        self.max_hops = max_hops

    def validate(self, arguments: dict[str, Any]) -> None:
        validate_schema(self.parameters, arguments)

    async def call(self, arguments: dict[str, Any], ctx: ToolCallContext) -> str:
        target = arguments["agent"].strip().lower()
        refused = refusal(chain_of(ctx), target, self.max_hops)
        if refused is not None:
            return refused
        return await self._delegate.ask(target, arguments["text"], ctx)
