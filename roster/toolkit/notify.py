"""`notify`: post a message to another chat (a channel, the admin's private chat).

A model that read a hostile page could post its words anywhere the bot can write, in
the bot's name: into the admin's private chat, a team channel. So a post goes unasked
only to the chat the request came from and to the chats the tool's policy lists
(`[tool_policy.notify] chats = ["slack:C0123"]`); anywhere else an approver first
reads the target chat and the text on the card (`roster.egress.chat_ruling`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from roster.egress import Destination, DestinationKind, Ruling, ask, chat_ruling
from roster.spec import CHAT_ID, Policy, ToolPolicy
from roster.toolkit.schema import validate_schema
from roster.tools import Tool, ToolCallContext


class Notifier(Protocol):
    """The bot side: deliver a text to a chat, or raise `ToolError` saying why not."""

    async def notify(self, chat: str, text: str, *, agent: str) -> None: ...


class NotifyTool(Tool):
    name = "notify"
    description = (
        "Post a message to another chat, given its id with transport prefix "
        "(e.g. telegram:123, slack:C0123). Chats other than this one may need approval."
    )
    parameters: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "properties": {
            "chat": {"type": "string", "pattern": CHAT_ID},
            "text": {"type": "string", "minLength": 1, "maxLength": 4000},
        },
        "required": ["chat", "text"],
        "additionalProperties": False,
    }

    def __init__(self, notifier: Notifier, policy: Policy | None = None) -> None:
        self._notifier = notifier
        self.policy = policy or Policy()

    @property
    def chats(self) -> tuple[str, ...]:
        """The chats the policy lets it post to unasked."""
        return self.policy.chats if isinstance(self.policy, ToolPolicy) else ()

    def validate(self, arguments: dict[str, Any]) -> None:
        validate_schema(self.parameters, arguments)

    def destination(self, arguments: dict[str, Any]) -> Destination:
        return Destination(DestinationKind.CHAT, arguments["chat"])

    def ruling(self, arguments: dict[str, Any], ctx: ToolCallContext) -> Ruling:
        where = chat_ruling(arguments["chat"], ctx.chat_id, self.chats)
        return ask().stricter(where) if self.needs_approval(arguments) else where

    async def call(self, arguments: dict[str, Any], ctx: ToolCallContext) -> str:
        await self._notifier.notify(arguments["chat"], arguments["text"], agent=ctx.agent)
        return f"posted to {arguments['chat']}"
