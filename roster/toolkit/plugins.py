"""Tools from installed distributions: entry points in the group `agentdeck.tools`.

    [project.entry-points."agentdeck.tools"]
    weather = "mypkg.tools:WeatherTool"

An entry point names a `Tool` instance, a `Tool` subclass (made with no arguments), or
a function returning a `Tool`. A plugin that fails to load is skipped with a reason
(the deck still starts); an agent that lists it then fails with "unknown tool".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from roster.agent import Action
from roster.egress import Destination, DestinationKind, Ruling
from roster.errors import ToolError
from roster.toolkit.schema import check_schema, validate_schema
from roster.tools import Tool, ToolCallContext

log = logging.getLogger(__name__)

GROUP = "agentdeck.tools"


@dataclass(frozen=True, slots=True)
class LoadedPlugins:
    tools: tuple[Tool, ...]
    problems: tuple[str, ...]  # one line per entry point that could not be used


def load_plugins(group: str = GROUP) -> LoadedPlugins:
    tools: list[Tool] = []
    problems: list[str] = []
    for point in entry_points(group=group):
        try:
            tools.append(SchemaChecked(_make(point)))
        except Exception as exc:  # a broken plugin must not stop the deck
            problem = f"tool plugin {point.name!r} ({point.value}): {exc}"
            log.warning("skipping %s", problem)
            problems.append(problem)
    return LoadedPlugins(tuple(tools), tuple(problems))


def _make(point: EntryPoint) -> Tool:
    target = point.load()
    if isinstance(target, type) and issubclass(target, Tool):
        tool = target()
    elif isinstance(target, Tool):
        tool = target
    elif callable(target):
        tool = target()
    else:
        raise TypeError("names neither a Tool, a Tool class, nor a function returning one")
    if not isinstance(tool, Tool):
        raise TypeError(f"gave {type(tool).__name__}, not a Tool")
    if not isinstance(getattr(tool, "name", None), str) or not tool.name:
        raise TypeError("the tool has no name")
    check_schema(tool.parameters)
    return tool


class SchemaChecked(Tool):
    """A plugin's tool, with its arguments held to its schema before its own checks."""

    def __init__(self, tool: Tool) -> None:
        self.inner = tool
        self.name = tool.name
        self.description = tool.description
        self.parameters = tool.parameters  # type: ignore[misc]
        self.policy = tool.policy

    def validate(self, arguments: dict[str, Any]) -> None:
        validate_schema(self.parameters, arguments)
        self.inner.validate(arguments)

    def action(self, agent: str, arguments: dict[str, Any]) -> Action:
        return self.inner.action(agent, arguments)

    def needs_approval(self, arguments: dict[str, Any]) -> bool:
        # The plugin's own rule, under the policy the registry may have overridden.
        self.inner.policy = self.policy
        return self.inner.needs_approval(arguments)

    def destination(self, arguments: dict[str, Any]) -> Destination:
        try:
            return self.inner.destination(arguments)
        except Exception:  # unknown, then: a secret it would carry needs a card
            log.exception("tool plugin %s failed to name its destination", self.name)
            return Destination(DestinationKind.TOOL, self.name)

    def ruling(self, arguments: dict[str, Any], ctx: ToolCallContext) -> Ruling:
        self.inner.policy = self.policy
        try:
            return self.inner.ruling(arguments, ctx)
        except ToolError:
            raise
        except Exception as exc:  # a plugin that cannot say is not run
            log.exception("tool plugin %s failed to rule on a call", self.name)
            raise ToolError(f"the tool failed ({type(exc).__name__})") from exc

    async def call(self, arguments: dict[str, Any], ctx: ToolCallContext) -> str:
        try:
            return str(await self.inner.call(arguments, ctx))
        except ToolError:
            raise
        except Exception as exc:  # a plugin's bug becomes a tool error, not a failed run
            log.exception("tool plugin %s failed", self.name)
            raise ToolError(f"the tool failed ({type(exc).__name__})") from exc
