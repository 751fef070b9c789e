"""The model client: one OpenAI-compatible endpoint, its requests and its replies.

Chat completions, plain and streamed, go through `roster.model_http` (aiohttp, straight):
the hot path of every llm message, so it never needs the SDK. The SDK stays for the
rarer calls (voice transcriptions, the model list `agentdeck doctor` checks); this is
the only module that imports `openai`, on first use of those, in a worker thread
(`load_sdk`, which builds the client there too: its TLS set-up reads the CA certificates
and imports httpcore2): about a third of a second of CPU and 18 MB here. The llm agent
(`roster.llm`), the providers and their fallback chains, the router and the summariser
all talk to models through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from roster.agent import (
    Usage,
)
from roster.errors import (
    ModelError,
    ModelUnavailable,
    StreamBroken,
)
from roster.model_http import ChatEndpoint
from roster.streaming import Stream

if TYPE_CHECKING:
    from openai import AsyncOpenAI


log = logging.getLogger(__name__)

Message = dict[str, Any]
NOT_FOUND = 404
RATE_LIMITED = 429
SERVER_ERRORS = 500


@contextlib.contextmanager
def _without_trio() -> Iterator[None]:
    """`import trio` fails meanwhile, unless trio is loaded already.

    Building the client sets up TLS through httpcore(2), which imports trio when it is
    installed (here it is, beside Selenium), to serve trio programs: 60 modules and about
    3 MB this asyncio process never uses. Afterwards trio imports as usual."""
    hidden = "trio" not in sys.modules
    if hidden:
        sys.modules["trio"] = None  # type: ignore[assignment]  # how Python spells "absent"
    try:
        yield
    finally:
        if hidden and "trio" in sys.modules and sys.modules["trio"] is None:
            del sys.modules["trio"]


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
        self._endpoint: ChatEndpoint | None = None
        self._connecting = threading.Lock()  # one SDK client, whichever thread builds it

    def unavailable_reason(self) -> str | None:
        if not self.settings.api_key and self.settings.section == "[llm]":
            return "no API key: set OPENAI_API_KEY or [llm] api_key"
        if not self.settings.api_key:
            return f"no API key: set {self.settings.section} api_key"
        return None

    async def load_sdk(self) -> None:
        """Import the SDK and build the client in a worker thread; the loop carries on."""
        if self._client is None:
            # Callers at once each wait in a thread; `_connect` builds it once.
            await asyncio.to_thread(self._build)

    def _build(self) -> None:
        with _without_trio():
            self._connect()

    async def complete(self, model: str, messages: list[Message], tools: list[Message]) -> Reply:
        body: dict[str, Any] = {"model": model, "messages": messages}
        if tools:
            body["tools"] = tools
        # Straight to aiohttp (`roster.model_http`), not the SDK's request path: the few
        # fields we read are read from the JSON, and their shape is checked here.
        response = await self._chat().complete(body)
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
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            body["tools"] = tools
        collected = Stream()
        chunks = await self._chat().stream(body)  # the request: retried as the SDK would
        try:
            async for chunk in chunks:
                if collected.add(chunk):
                    await on_text(collected.text)
        except ModelError as exc:  # cut off mid-way: not retried
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

    def _chat(self) -> ChatEndpoint:
        if self._endpoint is None:
            settings = self.settings
            self._endpoint = ChatEndpoint(
                base_url=settings.base_url,
                api_key=settings.api_key,
                timeout=settings.timeout,
                max_retries=settings.max_retries,
                section=settings.section,
            )
        return self._endpoint

    def _connect(self) -> AsyncOpenAI:
        """The client, built on first use (blocking: `load_sdk` runs it in a thread)."""
        if self._client is not None:
            return self._client
        with self._connecting:
            if self._client is None:
                from openai import AsyncOpenAI, DefaultAioHttpClient

                self._client = AsyncOpenAI(
                    api_key=self.settings.api_key,
                    base_url=self.settings.base_url,
                    timeout=self.settings.timeout,
                    max_retries=self.settings.max_retries,
                    # aiohttp underneath: measured here about twice the calls per second of
                    # the default httpx transport with 50 requests in flight.
                    http_client=DefaultAioHttpClient(),
                )
            return self._client

    async def close(self) -> None:
        if self._endpoint is not None:
            await self._endpoint.close()
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
