"""Which approvals are for destructive actions: those the dashboard confirms twice.

A command agent configured with `approval = "always"` asks for every command it runs:
its operator marked it as one whose every action matters, so an Approve on the
dashboard takes a second, deliberate click. Tool actions have no such mark of their own
yet; a `ToolHint` is where one plugs in (an MCP tool's `destructiveHint` annotation is
the intended first): any hint that says yes makes the action destructive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from roster.agent import Action
from roster.errors import AgentNotFound
from roster.roster import Roster
from roster.spec import ApprovalMode, CommandAgentSpec

ToolHint = Callable[[Action], bool]


def is_destructive(action: Action, roster: Roster, tool_hints: Iterable[ToolHint] = ()) -> bool:
    """True when approving `action` should be confirmed before it counts."""
    if action.kind == "tool":
        return any(hint(action) for hint in tool_hints)
    try:
        spec = roster.get(action.agent).spec
    except AgentNotFound:  # removed since it asked: confirming costs one click, not a mistake
        return True
    return isinstance(spec, CommandAgentSpec) and spec.policy.approval is ApprovalMode.ALWAYS
