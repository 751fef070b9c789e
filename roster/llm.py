"""The llm agent: an OpenAI-compatible chat model with a tool-call loop.

It talks to its model through `roster.model_client` (via the providers and their
fallback chains), offers its tools, gates each call by the tool policy, and keeps its
state (messages, pending calls) resumable across an approval and a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from roster import attachments
from roster.agent import (
    Action,
    Agent,
    AgentRequest,
    Decision,
    Finished,
    NeedsApproval,
    Outcome,
    RunContext,
    Turn,
    Usage,
)
from roster.egress import Egress, Ruling, Verdict
from roster.errors import (
    ReferenceNotFound,
    SecretNotAllowed,
    ToolError,
)
from roster.fallback import complete
from roster.model_client import Message, Reply, ToolRequest
from roster.pricing import NO_PRICES, PriceTable
from roster.refs import NoSecrets, SecretSource, resolve_arguments, secret_references
from roster.spec import LLMAgentSpec
from roster.summary import summarise
from roster.tools import Tool, ToolCallContext, ToolSource, parse_arguments

if TYPE_CHECKING:
    from roster.providers import ModelChoices, Providers, Target

log = logging.getLogger(__name__)

REFUSED = "error: refused:"  # how a tool result refused by the egress policy starts


class LLMAgent(Agent):
    spec: LLMAgentSpec
    summarises = True
    reads_history = True

    def __init__(
        self,
        spec: LLMAgentSpec,
        *,
        providers: Providers,
        tools: Mapping[str, Tool],
        secrets: SecretSource | None = None,
        prices: PriceTable = NO_PRICES,
        egress: Egress | None = None,
        choices: ModelChoices | None = None,
        more_tools: ToolSource | None = None,
    ) -> None:
        from roster.providers import NoChoices

        self.spec = spec
        self._providers = providers
        self._choices = choices or NoChoices()  # the model a chat switched this agent to
        self._own_tools = dict(tools)
        self._more_tools = more_tools  # MCP servers' tools: known once a server started
        self._prices = prices
        # Tool arguments resolve `secret:` through it; everything the model reads is
        # scrubbed by it, so a model never sees a secret's value.
        self._secrets = secrets or NoSecrets()
        self._egress = egress or Egress()

    def unavailable_reason(self) -> str | None:
        return super().unavailable_reason() or self._providers.unavailable_reason(self.spec)

    async def chain(self, chat: str) -> list[Target]:
        """The models a request in `chat` tries, in order (the chat's /model choice first)."""
        return self._providers.chain(self.spec, await self._choices.chosen(chat, self.name))

    @property
    def _tools(self) -> dict[str, Tool]:
        if self._more_tools is None:
            return self._own_tools
        return {**self._own_tools, **self._more_tools.current()}

    async def _refresh_tools(self) -> None:
        """Start the MCP servers this agent lists (the first run after a start or a crash)."""
        if self._more_tools is not None:
            for problem in await self._more_tools.refresh():
                log.warning("agent %s: %s", self.name, problem)

    async def start(self, request: AgentRequest, ctx: RunContext) -> Outcome:
        await self._refresh_tools()
        messages = self._opening(request)
        documents = attachments.text_blocks(request.files)
        if documents:
            messages[-1]["content"] += self._secrets.redact(documents)
        images = [f for f in request.files if attachments.takes_inline(self.spec, f)]
        parts = await asyncio.to_thread(attachments.image_parts, images) if images else []
        if parts:  # the files are read in a thread: a photo is megabytes
            text = {"type": "text", "text": messages[-1]["content"]}
            messages[-1] = {"role": "user", "content": [text, *parts]}
        return await self._loop(request, ctx, messages, turns=0, usage=Usage())

    async def resume(
        self, request: AgentRequest, state: dict[str, Any], decision: Decision, ctx: RunContext
    ) -> Outcome:
        await self._refresh_tools()
        messages: list[Message] = state["messages"]
        pending = [ToolRequest(**call) for call in state["pending"]]
        first, rest = pending[0], pending[1:]
        if decision.approved:
            await ctx.before_effect()
            result = await self._call_tool(request, first, ctx)
        else:
            why = f" Reason: {decision.reason}" if decision.reason else ""
            result = f"Denied by {decision.by}; the action did not run.{why}"
        self._reply_to_call(ctx, messages, first, result, denied=not decision.approved)
        usage = Usage(**state.get("usage", {}))
        stopped = await self._run_calls(
            request, ctx, messages, rest, turns=state["turns"], usage=usage
        )
        return stopped or await self._loop(request, ctx, messages, state["turns"], usage)

    def _opening(self, request: AgentRequest) -> list[Message]:
        messages: list[Message] = []
        if self.spec.instructions:
            messages.append({"role": "system", "content": self.spec.instructions})
        for turn in request.history:
            role = "system" if turn.role == "summary" else turn.role
            content = turn.content
            if turn.role == "summary":
                content = f"Summary of the earlier conversation:\n{content}"
            messages.append({"role": role, "content": self._secrets.redact(content)})
        messages.append({"role": "user", "content": self._secrets.redact(request.text)})
        return messages

    async def summarise(self, previous: str, turns: Sequence[Turn]) -> str | None:
        """Fold older turns into the running summary, with this agent's own model."""
        client = self._providers.client(self.spec.provider)
        return await summarise(client, self.spec.model, previous, turns)

    async def _loop(
        self,
        request: AgentRequest,
        ctx: RunContext,
        messages: list[Message],
        turns: int,
        usage: Usage,
    ) -> Outcome:
        schemas = [tool.schema() for tool in self._tools.values()]
        chain = await self.chain(request.chat_id)
        while turns < self.spec.max_turns:
            await ctx.before_model_call()
            reply = await complete(
                chain,
                messages=messages,
                tools=schemas,
                prices=self._prices,
                on_text=ctx.stream if self.spec.stream else None,
            )
            ctx.spent(reply.usage)
            turns += 1
            usage += reply.usage
            if not reply.tool_calls:
                return Finished(reply.content, usage=usage, answered_by=_answered_by(reply))
            messages.append(reply.as_message())
            stopped = await self._run_calls(
                request, ctx, messages, list(reply.tool_calls), turns=turns, usage=usage
            )
            if stopped:
                return stopped
        return Finished(
            f"Stopped after {self.spec.max_turns} model turns without a final answer "
            "(raise max_turns for this agent if it needs more).",
            ok=False,
            usage=usage,
        )

    async def _run_calls(
        self,
        request: AgentRequest,
        ctx: RunContext,
        messages: list[Message],
        calls: list[ToolRequest],
        *,
        turns: int,
        usage: Usage,
    ) -> NeedsApproval | None:
        """Run tool calls in order; stop at the first that needs a human's approval."""
        for index, call in enumerate(calls):
            gate = self._gate(request, call)
            if gate is not None:
                pending = [_call_json(c) for c in calls[index:]]
                state = {
                    "messages": messages,
                    "pending": pending,
                    "turns": turns,
                    "usage": usage.to_json(),
                }
                tool, arguments = gate
                action = tool.action(self.name, arguments)
                return NeedsApproval(action=action, policy=tool.policy, state=state, usage=usage)
            await ctx.before_effect()  # a tool may act: the run is stored before it does
            result = await self._call_tool(request, call, ctx)
            self._reply_to_call(ctx, messages, call, result)
        return None

    def _reply_to_call(
        self,
        ctx: RunContext,
        messages: list[Message],
        call: ToolRequest,
        result: str,
        *,
        denied: bool = False,
    ) -> None:
        """Hand the (scrubbed) result to the model, and record the call for the run."""
        shown = self._secrets.redact(result)
        messages.append(_tool_message(call, shown))
        status = "denied" if denied else _status(shown)
        ctx.tool_called(call.name, self._secrets.redact(call.arguments), shown, status=status)

    async def preview(self, action: Action) -> str:
        """What the card adds to the action: the secrets it sends where, and the tool's own."""
        tool = self._tools.get(action.tool or "")
        if tool is None:
            return ""
        # A command tool's action keeps the argv its arguments made, not the arguments.
        names = secret_references([action.arguments, list(action.argv)])
        carried = self._egress.carry(names, tool.destination(action.arguments))
        own = await tool.preview(action.arguments)
        return "\n".join(part for part in (carried.reason, own) if part)

    def recheck(self, request: AgentRequest, state: dict[str, Any]) -> NeedsApproval | None:
        pending = [ToolRequest(**call) for call in state.get("pending", ())]
        gate = self._gate(request, pending[0]) if pending else None
        if gate is None:
            return None
        tool, arguments = gate
        return NeedsApproval(
            action=tool.action(self.name, arguments), policy=tool.policy, state=state
        )

    def _gate(self, request: AgentRequest, call: ToolRequest) -> tuple[Tool, dict[str, Any]] | None:
        """The tool and arguments of a call that must wait for an approver, else None."""
        tool = self._tools.get(call.name)
        if tool is None:
            return None
        try:
            arguments = parse_arguments(call.arguments)
            tool.validate(arguments)
            ruling = self._ruling(tool, arguments, self._context(request))
        except ToolError:
            return None  # refused when called, before anything runs
        return (tool, arguments) if ruling.verdict is Verdict.ASK else None

    def _ruling(self, tool: Tool, arguments: dict[str, Any], ctx: ToolCallContext) -> Ruling:
        """The tool's own ruling and the egress policy's on the secrets the call carries."""
        return tool.ruling(arguments, ctx).stricter(self._carried(tool, arguments))

    def _carried(self, tool: Tool, arguments: dict[str, Any]) -> Ruling:
        return self._egress.carry(secret_references(arguments), tool.destination(arguments))

    def _context(self, request: AgentRequest, run: RunContext | None = None) -> ToolCallContext:
        """What a tool call may know of its run; `run` given when the call is carried out."""
        return ToolCallContext(
            request.run_id,
            request.chat_id,
            self.name,
            memory=self.spec.memory_key,
            user=request.user_id,
            thread=request.thread,
            hops=request.hops,
            egress=self._egress,
            redact=self._secrets.redact,
            process_started=run.process_started if run is not None else _no_process,
            files=tuple(file.path for file in request.files),
        )

    async def _call_tool(self, request: AgentRequest, call: ToolRequest, run: RunContext) -> str:
        tool = self._tools.get(call.name)
        if tool is None:
            return (
                f"error: no tool named {call.name!r}; available: {', '.join(self._tools) or 'none'}"
            )
        try:
            arguments = parse_arguments(call.arguments)
            tool.validate(arguments)
            context = self._context(request, run)
            ruling = self._ruling(tool, arguments, context)
            if ruling.verdict is Verdict.REFUSE:
                return f"{REFUSED} {ruling.reason}"
            resolved = resolve_arguments(arguments, self._secrets)
            return await tool.call(resolved, context)
        except (ToolError, ReferenceNotFound, SecretNotAllowed) as exc:
            return f"error: {exc}"


def _answered_by(reply: Reply) -> str:
    """Said under the answer when a fallback model gave it: which one, and why."""
    if not reply.fell_back:
        return ""
    return f"answered by {reply.model} ({reply.fell_back})"


def _no_process(pid: int) -> None:
    """A call only weighed (is it gated?), not carried out, starts no process."""


def _status(result: str) -> str:
    """How a tool call is recorded: done, error, or refused (by the egress policy)."""
    if result.startswith(REFUSED):
        return "refused"
    return "error" if result.startswith("error:") else "done"


def _call_json(call: ToolRequest) -> dict[str, str]:
    return {"id": call.id, "name": call.name, "arguments": call.arguments}


def _tool_message(call: ToolRequest, content: str) -> Message:
    return {"role": "tool", "tool_call_id": call.id, "content": content}
