"""`notify`: post a message to another chat (a channel, the admin's private chat)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from roster.spec import Policy
from roster.toolkit.schema import validate_schema
from roster.tools import Tool, ToolCallContext


class Notifier(Protocol):
    """The bot side: deliver a text to a chat, or raise `ToolError` saying why not."""

    async def notify(self, chat: str, text: str, *, agent: str) -> None: ...


class NotifyTool(Tool):
    name = "notify"
    description = (
        "Post a message to another chat, given its id with transport prefix "
        "(e.g. telegram:123, slack:C0123)."
    )
    parameters: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "properties": {
            "chat": {"type": "string", "pattern": "^[a-z]+:.+$"},
            "text": {"type": "string", "minLength": 1, "maxLength": 4000},
        },
        "required": ["chat", "text"],
        "additionalProperties": False,
    }

    def __init__(self, notifier: Notifier, policy: Policy | None = None) -> None:
        self._notifier = notifier
        self.policy = policy or Policy()

    def validate(self, arguments: dict[str, Any]) -> None:
        validate_schema(self.parameters, arguments)

    async def call(self, arguments: dict[str, Any], ctx: ToolCallContext) -> str:
        await self._notifier.notify(arguments["chat"], arguments["text"], agent=ctx.agent)
        return f"posted to {arguments['chat']}"
