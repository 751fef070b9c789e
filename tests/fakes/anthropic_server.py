"""A fake Anthropic Messages API on 127.0.0.1, for driving the real Claude Code CLI offline.

`POST /v1/messages` answers streamed (server-sent events in the real API's order:
message_start, ping, content_block_start/delta/stop per text or tool_use block, message_delta
with usage and stop_reason, message_stop) or as one JSON message, and
`POST /v1/messages/count_tokens` counts roughly. Each request takes the next scripted
`Reply` (text, tool uses, an HTTP error, a delay); with nothing scripted it answers
`echo: <last user text>`. Every request body is kept in `requests` (a test reads the
history the CLI resent), every other path is answered 404 and kept in `unhandled`.
Point the CLI at it with `ANTHROPIC_BASE_URL=<base_url>` (no `/v1`: the CLI adds it).
Run it alone for benchmarks: `python -m tests.fakes.anthropic_server --port 8200`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

PING_EVERY = 0.2  # seconds between pings while a delayed reply waits (the real API pings too)


@dataclass
class Reply:
    text: str | None = None
    tool_uses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0  # before the first content block; pings keep the stream alive
    input_tokens: int = 12
    output_tokens: int = 7


def say(text: str, *, delay: float = 0.0) -> Reply:
    return Reply(text=text, delay=delay)


def use(name: str, text: str | None = None, **tool_input: Any) -> Reply:
    """A tool_use reply (`stop_reason: tool_use`), with an optional text block before it."""
    return Reply(text=text, tool_uses=[(name, tool_input)])


def fail(status: int) -> Reply:
    return Reply(status=status)


def last_user_text(body: dict[str, Any]) -> str:
    """The last text a user message carries (the CLI prepends system reminders as blocks)."""
    for message in reversed(body.get("messages", [])):
        if message.get("role") != "user":
            continue
        texts = [b.get("text", "") for b in _blocks(message) if b.get("type") == "text"]
        if texts:
            return str(texts[-1])
    return ""


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every tool_result block in the request's history, oldest first."""
    return [
        block
        for message in body.get("messages", [])
        for block in _blocks(message)
        if block.get("type") == "tool_result"
    ]


def all_text(body: dict[str, Any]) -> str:
    """All text of the request's messages joined (for 'does the history hold X')."""
    parts: list[str] = []
    for message in body.get("messages", []):
        for block in _blocks(message):
            if block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            elif block.get("type") == "tool_result":
                parts.append(json.dumps(block.get("content")))
    return "\n".join(parts)


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content or [])


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class FakeAnthropic:
    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.requests: list[dict[str, Any]] = []
        self.unhandled: list[str] = []  # "METHOD /path" of every request answered 404
        self.aborted = 0  # streams the client closed before message_stop
        self.received = asyncio.Event()  # set at each /v1/messages request (tests clear it)
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        return app

    async def start(self, port: int = 0) -> Self:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.received.set()
        reply = self.script.pop(0) if self.script else Reply(text=f"echo: {last_user_text(body)}")
        if reply.status != 200:
            error = {"type": "api_error", "message": f"scripted failure {reply.status}"}
            return web.json_response({"type": "error", "error": error}, status=reply.status)
        message = self._message(body, reply)
        if body.get("stream"):
            return await self._stream(request, message, reply.delay)
        await asyncio.sleep(reply.delay)
        return web.json_response(message)

    async def _count_tokens(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"input_tokens": max(1, len(json.dumps(body)) // 4)})

    async def _not_found(self, request: web.Request) -> web.Response:
        self.unhandled.append(f"{request.method} {request.path}")
        error = {"type": "not_found_error", "message": f"no route {request.path}"}
        return web.json_response({"type": "error", "error": error}, status=404)

    def _message(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if reply.text is not None:
            content.append({"type": "text", "text": reply.text})
        for name, tool_input in reply.tool_uses:
            tool_id = f"toolu_{next(self._ids):024d}"
            content.append({"type": "tool_use", "id": tool_id, "name": name, "input": tool_input})
        usage = {
            "input_tokens": reply.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": reply.output_tokens,
        }
        return {
            "id": f"msg_{next(self._ids):024d}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude-fake"),
            "content": content,
            "stop_reason": "tool_use" if reply.tool_uses else "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }

    async def _stream(
        self, request: web.Request, message: dict[str, Any], delay: float
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        try:
            await response.write(_message_start(message))
            await response.write(_sse("ping", {"type": "ping"}))
            await _ping_for(delay, response)
            for chunk in _content_and_end(message):
                await response.write(chunk)
            await response.write_eof()
        except ConnectionResetError:  # the client hung up (an interrupted turn)
            self.aborted += 1
        except asyncio.CancelledError:
            self.aborted += 1
            raise
        return response


def _message_start(message: dict[str, Any]) -> bytes:
    """The message with no content yet and one output token, as the API opens a stream."""
    usage = {**message["usage"], "output_tokens": 1}
    start = {**message, "content": [], "stop_reason": None, "usage": usage}
    return _sse("message_start", {"type": "message_start", "message": start})


def _content_and_end(message: dict[str, Any]) -> list[bytes]:
    chunks: list[bytes] = []
    for index, block in enumerate(message["content"]):
        chunks.extend(_block_events(index, block))
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    usage = {"output_tokens": message["usage"]["output_tokens"]}
    chunks.append(_sse("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
    chunks.append(_sse("message_stop", {"type": "message_stop"}))
    return chunks


async def _ping_for(delay: float, response: web.StreamResponse) -> None:
    """Wait `delay` seconds, pinging, so a client that hangs up is noticed at once."""
    loop = asyncio.get_running_loop()
    until = loop.time() + delay
    while (left := until - loop.time()) > 0:
        await asyncio.sleep(min(PING_EVERY, left))
        await response.write(_sse("ping", {"type": "ping"}))


def _block_events(index: int, block: dict[str, Any]) -> list[bytes]:
    """content_block_start, deltas in pieces (as the API splits them), content_block_stop."""
    if block["type"] == "text":
        empty: dict[str, Any] = {"type": "text", "text": ""}
        text = block["text"]
        deltas = [{"type": "text_delta", "text": text[i : i + 16]} for i in range(0, len(text), 16)]
    else:
        empty = {**block, "input": {}}
        encoded = json.dumps(block["input"])
        deltas = [{"type": "input_json_delta", "partial_json": ""}] + [
            {"type": "input_json_delta", "partial_json": encoded[i : i + 16]}
            for i in range(0, len(encoded), 16)
        ]
    start = {"type": "content_block_start", "index": index, "content_block": empty}
    events = [_sse("content_block_start", start)]
    events += [
        _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
        for d in deltas
    ]
    events.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


async def _serve(port: int) -> None:
    server = await FakeAnthropic().start(port)
    print(f"fake Anthropic on {server.base_url}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8200)
    options = parser.parse_args()
    asyncio.run(_serve(options.port))
