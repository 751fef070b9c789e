"""An MCP server's tool as a roster `Tool`: named `<server>__<tool>`, with its schema.

Its policy is the `[tool_policy."<server>__<tool>"]` table when there is one, else the
server's default (`approval = "always"` unless the server entry says otherwise). Under
`approval = "unless-read-only"` a tool the server marks `readOnlyHint` runs unasked.
The approval card shows the server, the tool and its annotations (`preview`); the
arguments it shows are the model's, `secret:` references by name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from roster.agent import needs_approval
from roster.spec import ApprovalMode, Policy
from roster.tools import MAX_TOOL_OUTPUT, Tool, ToolCallContext

if TYPE_CHECKING:
    from mcp import types

    from roster.mcp.connection import Connection

# What a model API accepts as a function name (OpenAI: letters, digits, "_" and "-").
FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_EMPTY_OBJECT: Mapping[str, Any] = {"type": "object", "properties": {}}


class McpTool(Tool):
    """One tool of one server; calls go through the server's shared connection."""

    def __init__(
        self, server: Connection, listed: types.Tool, *, name: str, policy: Policy
    ) -> None:
        self.name = name
        self.server = server.spec.name
        self.remote = listed.name
        self.description = (listed.description or listed.title or listed.name)[:1024]
        self.parameters = dict(listed.inputSchema or _EMPTY_OBJECT)  # type: ignore[misc]
        self.policy = policy
        hints = listed.annotations
        self.read_only = bool(hints and hints.readOnlyHint)
        # MCP's default for a tool that is not read-only is "may destroy".
        self.destructive = not self.read_only and (
            hints is None or hints.destructiveHint is None or bool(hints.destructiveHint)
        )
        self._connection = server

    def needs_approval(self, arguments: dict[str, Any]) -> bool:
        if self.policy.approval is ApprovalMode.UNLESS_READ_ONLY:
            return not self.read_only
        return needs_approval(self.policy, ())

    async def preview(self, arguments: dict[str, Any]) -> str:
        marks = ["read-only" if self.read_only else "may change things"]
        if self.destructive:
            marks.append("destructive")
        return (
            f"MCP tool {self.remote} of server {self.server} "
            f"({self._connection.spec.transport}); the server says: {', '.join(marks)}"
        )

    async def call(self, arguments: dict[str, Any], ctx: ToolCallContext) -> str:
        from roster.mcp.content import tool_result_text

        result = await self._connection.call(self.remote, arguments)
        text = ctx.redact(tool_result_text(result))
        if len(text) > MAX_TOOL_OUTPUT:
            text = text[:MAX_TOOL_OUTPUT] + "\n[cut: the result was longer]"
        return text
