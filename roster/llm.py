"""The llm agent: an OpenAI-compatible chat model with a tool-call loop.

The only module that imports `openai`; it does so on first use, so a bot that has
not talked to a model yet does not pay for loading the SDK. The import takes about a
third of a second of CPU here, seconds on a busy small machine, so it runs in a worker
thread, never on the event loop: `ModelClient.load_sdk` (`agentdeck run` calls it as
soon as the deck runs, when it has an llm agent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
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
    ModelError,
    ModelUnavailable,
    ReferenceNotFound,
    SecretNotAllowed,
    StreamBroken,
    ToolError,
)
from roster.fallback import complete
from roster.pricing import NO_PRICES, PriceTable
from roster.refs import NoSecrets, SecretSource, resolve_arguments, secret_references
from roster.spec import LLMAgentSpec
from roster.streaming import Stream
from roster.summary import summarise
from roster.tools import Tool, ToolCallContext, ToolSource, parse_arguments

if TYPE_CHECKING:
    from openai import AsyncOpenAI

    from roster.providers import ModelChoices, Providers, Target

log = logging.getLogger(__name__)

Message = dict[str, Any]
NOT_FOUND = 404
RATE_LIMITED = 429
SERVER_ERRORS = 500
REFUSED = "error: refused:"  # how a tool result refused by the egress policy starts

_SDK_LOADED = threading.Event()


def _import_sdk() -> None:
    """What a model call imports; blocking, for a worker thread."""
    from openai import AsyncOpenAI, DefaultAioHttpClient  # noqa: F401

    _SDK_LOADED.set()


@dataclass(frozen=True, slots=True)
class ModelSettings:
    base_url: str | None
    api_key: str | None
    timeout: float = 60.0
    max_retries: int = 2
    section: str = "[llm]"  # where its settings are, as error texts name it


@dataclass(frozen=True, slots=True)
class ToolRequest:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Reply:
    content: str
    tool_calls: tuple[ToolRequest, ...]
    usage: Usage
    model: str = ""  # which model answered, as `roster.providers` names it
    fell_back: str = ""  # why: the failures of the models tried before it

    def as_message(self) -> Message:
        message: Message = {"role": "assistant", "content": self.content or None}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in self.tool_calls
            ]
        return message


class ModelClient:
    """One shared AsyncOpenAI client; SDK errors become `ModelError` with a clear text."""

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self._client: AsyncOpenAI | None = None

    def unavailable_reason(self) -> str | None:
        if not self.settings.api_key and self.settings.section == "[llm]":
            return "no API key: set OPENAI_API_KEY or [llm] api_key"
        if not self.settings.api_key:
            return f"no API key: set {self.settings.section} api_key"
        return None

    async def load_sdk(self) -> None:
        """Import the SDK in a worker thread; the loop carries on meanwhile."""
        if not _SDK_LOADED.is_set():
            # Callers at once each wait in a thread; Python's import lock runs it once.
            await asyncio.to_thread(_import_sdk)

    async def complete(self, model: str, messages: list[Message], tools: list[Message]) -> Reply:
        if self._client is None:
            await self.load_sdk()
        client = self._connect()
        body: dict[str, Any] = {"model": model, "messages": messages}
        if tools:
            body["tools"] = tools
        with _model_errors(self.settings):
            # The SDK's own request path (retries, errors, status handling) without
            # `chat.completions.create`'s walk over every parameter (our messages are
            # plain JSON already) or building its response models: the few fields we
            # read are read from the JSON, and their shape is checked here.
            response = await client.post("/chat/completions", body=body, cast_to=dict)
        try:
            return _reply(response)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise ModelError("The model API sent a malformed response.") from exc

    async def stream(
        self,
        model: str,
        messages: list[Message],
        tools: list[Message],
        on_text: Callable[[str], Awaitable[None]],
    ) -> Reply:
        """As `complete`, streamed: `on_text(text so far)` as the answer grows.

        A stream cut off once it began is a `StreamBroken` carrying the text shown."""
        if self._client is None:
            await self.load_sdk()
        client = self._connect()
        from openai import AsyncStream

        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            body["tools"] = tools
        collected = Stream()
        with _model_errors(self.settings):  # the request: the SDK retries it
            chunks = await client.post(
                "/chat/completions",
                body=body,
                cast_to=dict,
                stream=True,
                stream_cls=AsyncStream[dict],  # type: ignore[type-arg]
            )
        try:
            with _model_errors(self.settings):
                async for chunk in chunks:
                    if collected.add(chunk):
                        await on_text(collected.text)
        except ModelError as exc:  # cut off mid-way: no retry by the SDK
            raise StreamBroken(str(exc), collected.text) from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError("The model API sent a malformed stream.") from exc
        if not collected.chunks:
            raise ModelError("The model API sent a malformed response.")
        calls = tuple(ToolRequest(*call) for call in collected.tool_calls())
        return Reply(collected.text, calls, Usage(*collected.tokens))

    async def transcribe(self, model: str, audio: bytes, filename: str) -> str:
        """The words in an audio file (`/audio/transcriptions`, at the chat provider)."""
        await self.load_sdk()
        client = self._connect()
        with _model_errors(self.settings):
            result = await client.audio.transcriptions.create(
                model=model, file=(filename or "voice.ogg", audio), response_format="json"
            )
        return str(getattr(result, "text", "") or "").strip()

    async def models(self) -> list[str]:
        """The model names the endpoint offers (`GET /models`): a cheap check of URL and key."""
        await self.load_sdk()
        client = self._connect()
        with _model_errors(self.settings):
            return [model.id async for model in client.models.list()]

    def _connect(self) -> AsyncOpenAI:
        if self._client is None:
            from openai import AsyncOpenAI, DefaultAioHttpClient

            self._client = AsyncOpenAI(
                api_key=self.settings.api_key,
                base_url=self.settings.base_url,
                timeout=self.settings.timeout,
                max_retries=self.settings.max_retries,
                # aiohttp underneath: measured here about twice the calls per second of the
                # default httpx transport with 50 requests in flight.
                http_client=DefaultAioHttpClient(),
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


@contextlib.contextmanager
def _model_errors(settings: ModelSettings) -> Iterator[None]:
    """Translate the SDK's errors into `ModelError` at this one boundary."""
    import openai

    timeout, section = settings.timeout, settings.section

    try:
        yield
    except openai.APITimeoutError as exc:
        if not _refused(exc):
            raise ModelUnavailable(f"The model API did not answer within {timeout:g} s.") from exc
        raise ModelUnavailable(
            f"The model API cannot be reached; check {section} base_url."
        ) from exc
    except openai.APIConnectionError as exc:
        raise ModelUnavailable(
            f"The model API cannot be reached; check {section} base_url."
        ) from exc
    except openai.APIStatusError as exc:
        if exc.status_code == NOT_FOUND and "/v1" not in exc.request.url.path:
            raise ModelError(
                f"The model API answered 404 at {_where(exc.request.url)}: does {section} base_url "
                "need /v1 at its end?"
            ) from exc
        failed = exc.status_code == RATE_LIMITED or exc.status_code >= SERVER_ERRORS
        error = ModelUnavailable if failed else ModelError
        raise error(f"The model API answered {exc.status_code}: {_short(exc.message)}") from exc
    except openai.OpenAIError as exc:
        raise ModelError(f"The model API failed: {_short(str(exc))}") from exc
    except ValueError as exc:  # undecodable JSON
        raise ModelError("The model API sent a malformed response.") from exc


def _where(url: Any) -> str:
    """An httpx URL without what may hold credentials (user info, query)."""
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}{url.path}"


def _reply(response: Any) -> Reply:
    """The answer, tool calls and token counts of a chat completion, from its JSON.

    A missing or mistyped field raises ValueError (reported as a malformed response)."""
    if not isinstance(response, dict):
        raise ValueError("not a JSON object")
    choices = response.get("choices")
    if not choices:
        raise ModelError("The model API returned no answer (empty choices).")
    message = choices[0]["message"]
    content = message.get("content") or ""
    calls = []
    for call in message.get("tool_calls") or ():
        if call.get("type", "function") == "function":
            function = call["function"]
            calls.append(ToolRequest(call["id"], function["name"], function.get("arguments") or ""))
    usage = response.get("usage") or {}
    counted = Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
    if not isinstance(content, str):
        raise ValueError("content is not text")
    return Reply(content, tuple(calls), counted)


def _refused(exc: BaseException) -> bool:
    """A "timeout" that was a refused or failed connection underneath.

    httpx-aiohttp maps every aiohttp `ClientConnectionError` to `ConnectTimeout`, so a
    closed port reads as a timeout; the OS error at the bottom of the chain tells.
    """
    seen: set[int] = set()
    cause = exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, OSError) and not isinstance(cause, TimeoutError):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
