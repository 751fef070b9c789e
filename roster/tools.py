"""Tools an llm agent may call: a registry of typed specs, each with its approval policy."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from roster.agent import Action, needs_approval
from roster.children import child_environment
from roster.egress import ALLOWED, Destination, DestinationKind, Egress, Ruling, ask
from roster.errors import ToolError
from roster.spec import ApprovalMode, Policy
from roster.toolkit.process import run_argv

MAX_TOOL_OUTPUT = 16_000


class NoteStore(Protocol):
    async def add_note(self, chat_id: str, agent: str, text: str) -> None: ...

    async def notes(self, chat_id: str, agent: str, keyword: str = "", limit: int = 20) -> Any: ...


@dataclass(frozen=True, slots=True)
class ToolCallContext:
    run_id: str
    chat_id: str
    agent: str
    memory: str = ""  # the memory key: the agent's name, or the chat's shared memory
    user: str = ""  # who asked for the run
    thread: str | None = None
    hops: tuple[str, ...] = ()  # the agents before this one in a delegation chain
    # Where this agent's calls may reach unasked (`roster.egress`).
    egress: Egress = field(default_factory=Egress)
    # The one scrubber every tool uses (not a copy of its own): it scrubs secret values
    # from what a tool returns (before any cut, so no half of a secret is left at the
    # cut) and keeps inherited variables holding a credential out of a child's env.
    redact: Callable[[str], str] = field(default=str, repr=False)
    # Told the process group a tool started (its own session: the group id is its pid), so
    # the run's row names it and a start after a kill -9 can stop it, as for command agents.
    process_started: Callable[[int], None] = field(default=lambda pid: None, repr=False)
    # The files sent with the message the run answers: all that `send_file` may send.
    files: tuple[str, ...] = ()

    @property
    def memory_key(self) -> str:
        return self.memory or self.agent


class Tool(ABC):
    name: str
    description: str
    parameters: ClassVar[Mapping[str, Any]]
    policy: Policy = Policy()

    def schema(self) -> dict[str, Any]:
        """The OpenAI `tools` entry for this tool."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }

    def action(self, agent: str, arguments: dict[str, Any]) -> Action:
        return Action(agent=agent, kind="tool", tool=self.name, arguments=arguments)

    def needs_approval(self, arguments: dict[str, Any]) -> bool:
        return needs_approval(self.policy, ())

    def destination(self, arguments: dict[str, Any]) -> Destination:
        """Where a call sends its arguments; a tool that reaches outside says where."""
        return Destination(DestinationKind.TOOL, self.name)

    def ruling(self, arguments: dict[str, Any], ctx: ToolCallContext) -> Ruling:
        """Whether a call runs unasked, waits for an approver, or is refused (and why).

        The secrets a call carries are ruled on by the agent, for every tool alike
        (`Egress.carry`); this is the tool's own part: its policy, and where it goes.
        """
        return ask() if self.needs_approval(arguments) else ALLOWED

    def validate(self, arguments: dict[str, Any]) -> None:
        """Refuse arguments that do not fit the schema, before anything runs."""
        validate_arguments(self.parameters, arguments)

    async def preview(self, arguments: dict[str, Any]) -> str:
        """A dry run or a diff for the approval card; tools that can, say what would happen."""
        return ""

    @abstractmethod
    async def call(self, arguments: dict[str, Any], ctx: ToolCallContext) -> str: ...


def validate_arguments(schema: Mapping[str, Any], arguments: dict[str, Any]) -> None:
    """Check required keys, unknown keys and the JSON types of top-level properties."""
    properties: Mapping[str, Any] = schema.get("properties", {})
    missing = [key for key in schema.get("required", ()) if key not in arguments]
    if missing:
        raise ToolError(f"missing argument(s): {', '.join(missing)}")
    if schema.get("additionalProperties") is False:
        extra = sorted(set(arguments) - set(properties))
        if extra:
            raise ToolError(f"unexpected argument(s): {', '.join(extra)}")
    for key, value in arguments.items():
        expected = properties.get(key, {}).get("type")
        if expected and not _has_json_type(value, expected):
            raise ToolError(f"argument {key!r} must be of type {expected}")


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def _has_json_type(value: Any, expected: str) -> bool:
    if expected in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _JSON_TYPES.get(expected, (object,)))


class RunCommandTool(Tool):
    """Run one command line (an argv list, no shell); asks for approval by default."""

    name = "run_command"
    description = "Run a command on the host (argv list, no shell) and return its output."
    parameters: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "properties": {"argv": {"type": "array", "items": {"type": "string"}}},
        "required": ["argv"],
        "additionalProperties": False,
    }

    def __init__(self, *, policy: Policy | None = None, timeout: float = 60) -> None:
        self.policy = policy or Policy(approval=ApprovalMode.ALWAYS)
        self.timeout = timeout

    def action(self, agent: str, arguments: dict[str, Any]) -> Action:
        return Action(agent=agent, kind="tool", tool=self.name, argv=tuple(arguments["argv"]))

    def needs_approval(self, arguments: dict[str, Any]) -> bool:
        return needs_approval(self.policy, tuple(arguments.get("argv", ())))

    def validate(self, arguments: dict[str, Any]) -> None:
        super().validate(arguments)
        argv = arguments["argv"]
        if not argv or not all(isinstance(part, str) for part in argv):
            raise ToolError("argv must be a non-empty list of strings")

    async def call(self, arguments: dict[str, Any], ctx: ToolCallContext) -> str:
        env = child_environment({}, redact=ctx.redact)
        return await run_argv(
            arguments["argv"],
            limit=self.timeout,
            env=env,
            redact=ctx.redact,
            on_started=ctx.process_started,
        )


class RememberTool(Tool):
    name = "remember"
    description = "Keep a note about this chat for later conversations."
    parameters: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
    }

    def __init__(self, notes: NoteStore) -> None:
        self._notes = notes

    async def call(self, arguments: dict[str, Any], ctx: ToolCallContext) -> str:
        await self._notes.add_note(ctx.chat_id, ctx.memory_key, arguments["text"])
        return "noted"


class RecallTool(Tool):
    name = "recall"
    description = (
        "Find earlier notes about this chat, most recent first. `keyword`: words that must "
        "all appear in a note (empty: the latest notes)."
    )
    parameters: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "properties": {"keyword": {"type": "string"}},
    }

    def __init__(self, notes: NoteStore) -> None:
        self._notes = notes

    async def call(self, arguments: dict[str, Any], ctx: ToolCallContext) -> str:
        keyword = arguments.get("keyword", "")
        rows = await self._notes.notes(ctx.chat_id, ctx.memory_key, keyword)
        return "\n".join(f"- {row.text}" for row in rows) or "no notes"


class ToolSource(Protocol):
    """Tools that come and go while the bot runs (an MCP server's): `refresh` before use."""

    async def refresh(self) -> list[str]:
        """Bring the tools up to date (start a server); what failed, in words."""
        ...

    def current(self) -> Mapping[str, Tool]:
        """The tools as last refreshed."""
        ...


class ToolBox:
    """The tools that exist; each agent gets the subset its `tools` list allows."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools = {tool.name: tool for tool in tools}

    def register(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        self._tools[tool.name] = tool

    def names(self) -> list[str]:
        return sorted(self._tools)

    def select(self, names: Iterable[str]) -> dict[str, Tool]:
        unknown = [name for name in names if name not in self._tools]
        if unknown:
            raise ToolError(
                f"unknown tool(s) {', '.join(unknown)}; known: {', '.join(self.names())}"
            )
        return {name: self._tools[name] for name in names}


def parse_arguments(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        raise ToolError(f"arguments are not valid JSON ({exc.msg})") from exc
    if not isinstance(value, dict):
        raise ToolError("arguments must be a JSON object")
    return value
