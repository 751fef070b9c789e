"""`send_file`: an llm agent sends one of its run's files back into the chat.

The model names a file, never a path: it may pick only among the files sent with the
message it answers (`AgentRequest.files`), so a prompt-injected model cannot send the
bot's database, its key file or another chat's attachments. The file goes to the chat
the request came from, through the outbox, like any answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any, ClassVar, Protocol

from roster.errors import ToolError
from roster.spec import Policy
from roster.toolkit.schema import validate_schema
from roster.tools import Tool, ToolCallContext


class FileSender(Protocol):
    """The bot side: send a file to a chat (as a document or photo), once per `key`."""

    async def send_file(
        self, chat: str, thread: str | None, path: str, *, agent: str, key: str
    ) -> None: ...


class SendFileTool(Tool):
    name = "send_file"
    description = (
        "Send one of the files of this conversation's message back into the chat, by its "
        "file name (as listed in the message)."
    )
    parameters: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "properties": {"file": {"type": "string", "minLength": 1, "maxLength": 255}},
        "required": ["file"],
        "additionalProperties": False,
    }

    def __init__(self, sender: FileSender, policy: Policy | None = None) -> None:
        self._sender = sender
        self.policy = policy or Policy()

    def validate(self, arguments: dict[str, Any]) -> None:
        validate_schema(self.parameters, arguments)

    async def call(self, arguments: dict[str, Any], ctx: ToolCallContext) -> str:
        wanted = arguments["file"]
        path = next((p for p in ctx.files if PurePath(p).name == wanted), None)
        if path is None:
            known = ", ".join(PurePath(p).name for p in ctx.files) or "none"
            raise ToolError(f"no file {wanted!r} in this conversation (files: {known})")
        key = f"run:{ctx.run_id}:send_file:{wanted}"
        await self._sender.send_file(ctx.chat_id, ctx.thread, path, agent=ctx.agent, key=key)
        return f"sent {wanted}"
