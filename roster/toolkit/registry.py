"""Put every tool together: built-ins, `[[tools]]` from config, entry-point plugins.

Each agent then gets the subset its `tools` list names (`ToolBox.select`): the list
is an allowlist, so a tool that exists is still out of reach of agents not listing it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from roster.spec import Policy
from roster.toolkit.delegation import DEFAULT_MAX_HOPS, AskAgentTool, Delegate
from roster.toolkit.http import HttpRequestTool
from roster.toolkit.jobs import JobBook, ListJobsTool, ScheduleJobTool
from roster.toolkit.notify import Notifier, NotifyTool
from roster.toolkit.plugins import load_plugins
from roster.toolkit.sendfile import FileSender, SendFileTool
from roster.toolkit.templated import CommandToolSpec, TemplateTool
from roster.tools import NoteStore, RecallTool, RememberTool, RunCommandTool, Tool, ToolBox

BUILTIN_NAMES = frozenset(
    {
        "run_command",
        "http_request",
        "remember",
        "recall",
        "schedule_job",
        "list_jobs",
        "ask_agent",
        "notify",
        "send_file",
    }
)


@dataclass(frozen=True, slots=True)
class Services:
    """What the built-in tools act through; `jobs` is None while no scheduler runs."""

    notes: NoteStore
    delegate: Delegate
    notifier: Notifier
    jobs: JobBook | None = None
    max_hops: int = DEFAULT_MAX_HOPS
    files: FileSender | None = None


@dataclass(frozen=True, slots=True)
class Built:
    toolbox: ToolBox
    problems: tuple[str, ...]  # plugins skipped, policies for tools that do not exist


def builtin_tools(services: Services) -> list[Tool]:
    tools: list[Tool] = [
        RunCommandTool(),
        HttpRequestTool(),
        RememberTool(services.notes),
        RecallTool(services.notes),
        AskAgentTool(services.delegate, max_hops=services.max_hops),
        NotifyTool(services.notifier),
    ]
    if services.jobs is not None:
        tools += [ScheduleJobTool(services.jobs), ListJobsTool(services.jobs)]
    if services.files is not None:
        tools.append(SendFileTool(services.files))
    return tools


def build_toolbox(
    services: Services,
    *,
    declared: Sequence[CommandToolSpec] = (),
    policies: Mapping[str, Policy] | None = None,
    plugins: bool = True,
) -> Built:
    """The registry; a name clash among config tools and built-ins is a `ValueError`."""
    box = ToolBox(builtin_tools(services))
    for spec in declared:
        box.register(TemplateTool(spec))
    problems: list[str] = []
    if plugins:
        loaded = load_plugins()
        problems += loaded.problems
        for tool in loaded.tools:
            if tool.name in box.names():
                problems.append(f"tool plugin {tool.name!r}: a tool of that name exists")
            else:
                box.register(tool)
    problems += _apply_policies(box, policies or {})
    return Built(box, tuple(problems))


def _apply_policies(box: ToolBox, policies: Mapping[str, Policy]) -> list[str]:
    known = box.select([name for name in policies if name in box.names()])
    for name, tool in known.items():
        tool.policy = policies[name]
    return [f"tool_policy.{name}: no tool of that name" for name in policies if name not in known]
