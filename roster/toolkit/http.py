"""`http_request`: one HTTP call, its status and the start of its body back to the model.

Approval follows the `rules` mode over (METHOD, url): by default GET and HEAD run
unasked (to any URL: `extra = "any"`) and anything that changes something waits for a
human.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import aiohttp

from roster.agent import Action, needs_approval
from roster.errors import ToolError
from roster.spec import AllowRule, ApprovalMode, Extra, Policy
from roster.toolkit.schema import validate_schema
from roster.tools import Tool, ToolCallContext

MAX_BODY = 16_000
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
DEFAULT_POLICY = Policy(
    approval=ApprovalMode.RULES,
    allow=(AllowRule(argv=("GET",), extra=Extra.ANY), AllowRule(argv=("HEAD",), extra=Extra.ANY)),
)


class HttpRequestTool(Tool):
    name = "http_request"
    description = (
        "Make an HTTP request and return the status and body. `headers` and `body` are "
        "optional; `secret:NAME` in a header value is replaced by that secret."
    )
    parameters: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "properties": {
            "url": {"type": "string", "pattern": "^https?://"},
            "method": {"type": "string", "enum": list(METHODS), "default": "GET"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "body": {"type": "string"},
        },
        "required": ["url"],
        "additionalProperties": False,
    }

    def __init__(self, policy: Policy | None = None, timeout: float = 30) -> None:
        self.policy = policy or DEFAULT_POLICY
        self.timeout = timeout

    def validate(self, arguments: dict[str, Any]) -> None:
        validate_schema(self.parameters, arguments)

    def action(self, agent: str, arguments: dict[str, Any]) -> Action:
        return Action(agent=agent, kind="tool", tool=self.name, arguments=arguments)

    def needs_approval(self, arguments: dict[str, Any]) -> bool:
        return needs_approval(self.policy, (_method(arguments), arguments["url"]))

    async def call(self, arguments: dict[str, Any], ctx: ToolCallContext) -> str:
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.request(
                    _method(arguments),
                    arguments["url"],
                    headers=arguments.get("headers"),
                    data=arguments.get("body"),
                ) as response,
            ):
                body = await response.content.read(MAX_BODY)
                return f"HTTP {response.status}\n{body.decode(errors='replace')}"
        except TimeoutError:
            return f"error: no answer within {self.timeout:g} s"
        except aiohttp.ClientError as exc:
            raise ToolError(f"request failed: {type(exc).__name__}: {exc}"[:300]) from exc


def _method(arguments: Mapping[str, Any]) -> str:
    return str(arguments.get("method") or "GET")
