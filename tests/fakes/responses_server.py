"""A fake OpenAI Responses API on 127.0.0.1, for driving the real Codex CLI offline.

`POST /v1/responses` with `stream: true` answers with server-sent events in the real API's
order: response.created, response.in_progress, per output item response.output_item.added,
its deltas (output_text or function_call_arguments) and response.output_item.done, then
response.completed with usage. Each request takes the next scripted `Reply` (text, function
calls such as Codex's `exec_command`, an HTTP error, a delay); with nothing scripted it
answers `echo: <last user text>`. Every request body is kept in `requests`, every other
path is answered 404 and kept in `unhandled`. Codex reaches it through a custom model
provider in `$CODEX_HOME/config.toml` (`base_url = <base_url>`, `wire_api = "responses"`):
the `OPENAI_BASE_URL` variable is not read by Codex 0.171.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web


@dataclass
class Reply:
    text: str | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
    input_tokens: int = 20
    output_tokens: int = 5


def say(text: str, *, delay: float = 0.0) -> Reply:
    return Reply(text=text, delay=delay)


def run(cmd: str, **arguments: Any) -> Reply:
    """A call of Codex's `exec_command` tool (runs `cmd` in its sandbox)."""
    return Reply(calls=[("exec_command", {"cmd": cmd, **arguments})])


def fail(status: int) -> Reply:
    return Reply(status=status)


def user_texts(body: dict[str, Any]) -> list[str]:
    """Every input_text of the request's user messages, oldest first."""
    return [
        str(part.get("text", ""))
        for item in body.get("input", [])
        if item.get("type") == "message" and item.get("role") == "user"
        for part in _parts(item)
        if part.get("type") == "input_text"
    ]


def assistant_texts(body: dict[str, Any]) -> list[str]:
    """Every output_text of the assistant messages resent as history, oldest first."""
    return [
        str(part.get("text", ""))
        for item in body.get("input", [])
        if item.get("type") == "message" and item.get("role") == "assistant"
        for part in _parts(item)
        if part.get("type") == "output_text"
    ]


def call_outputs(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every function_call_output item of the request (what a tool call returned)."""
    return [item for item in body.get("input", []) if item.get("type") == "function_call_output"]


def _parts(item: dict[str, Any]) -> list[dict[str, Any]]:
    content = item.get("content")
    if isinstance(content, str):
        return [{"type": "input_text", "text": content}]
    return list(content or [])


class FakeResponses:
    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.requests: list[dict[str, Any]] = []
        self.unhandled: list[str] = []
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/responses", self._responses)
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

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        texts = user_texts(body)
        reply = self.script.pop(0) if self.script else say(f"echo: {texts[-1] if texts else ''}")
        await asyncio.sleep(reply.delay)
        if reply.status != 200:
            error = {"message": f"scripted failure {reply.status}", "type": "server_error"}
            return web.json_response({"error": error}, status=reply.status)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        for chunk in self._events(body, reply):
            await response.write(chunk)
        await response.write_eof()
        return response

    async def _not_found(self, request: web.Request) -> web.Response:
        self.unhandled.append(f"{request.method} {request.path}")
        error = {"message": f"no route {request.path}", "type": "invalid_request_error"}
        return web.json_response({"error": error}, status=404)

    def _events(self, body: dict[str, Any], reply: Reply) -> list[bytes]:
        sequence = itertools.count()
        head = {
            "id": f"resp_{next(self._ids):024d}",
            "object": "response",
            "created_at": int(time.time()),
            "status": "in_progress",
            "model": body.get("model", "gpt-fake"),
            "output": [],
        }

        def event(kind: str, **data: Any) -> bytes:
            payload = {"type": kind, "sequence_number": next(sequence), **data}
            return f"event: {kind}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()

        chunks = [event("response.created", response=head)]
        chunks.append(event("response.in_progress", response=head))
        items = self._items(reply)
        for index, item in enumerate(items):
            chunks += [event(kind, **data) for kind, data in _item_events(index, item)]
        usage = {
            "input_tokens": reply.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": reply.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": reply.input_tokens + reply.output_tokens,
        }
        done = {**head, "status": "completed", "output": items, "usage": usage}
        chunks.append(event("response.completed", response=done))
        return chunks

    def _items(self, reply: Reply) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        if reply.text is not None:
            part = {"type": "output_text", "text": reply.text, "annotations": []}
            items.append(
                {
                    "id": f"msg_{next(self._ids):024d}",
                    "type": "message",
                    "status": "completed",
                    "role": "assistant",
                    "content": [part],
                }
            )
        for name, arguments in reply.calls:
            n = next(self._ids)
            items.append(
                {
                    "id": f"fc_{n:024d}",
                    "type": "function_call",
                    "status": "completed",
                    "call_id": f"call_{n:024d}",
                    "name": name,
                    "arguments": json.dumps(arguments),
                }
            )
        return items


def _item_events(index: int, item: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """output_item.added, the item's deltas and their done events, output_item.done."""
    at = {"output_index": index, "item_id": item["id"]}
    if item["type"] == "message":
        text = item["content"][0]["text"]
        empty = {"type": "output_text", "text": "", "annotations": []}
        middle = [
            ("response.content_part.added", {**at, "content_index": 0, "part": empty}),
            ("response.output_text.delta", {**at, "content_index": 0, "delta": text}),
            ("response.output_text.done", {**at, "content_index": 0, "text": text}),
            ("response.content_part.done", {**at, "content_index": 0, "part": item["content"][0]}),
        ]
        opened = {**item, "status": "in_progress", "content": []}
    else:
        arguments = item["arguments"]
        middle = [
            ("response.function_call_arguments.delta", {**at, "delta": arguments}),
            ("response.function_call_arguments.done", {**at, "arguments": arguments}),
        ]
        opened = {**item, "status": "in_progress", "arguments": ""}
    return [
        ("response.output_item.added", {"output_index": index, "item": opened}),
        *middle,
        ("response.output_item.done", {"output_index": index, "item": item}),
    ]


async def _serve(port: int) -> None:
    server = await FakeResponses().start(port)
    print(f"fake Responses API on {server.base_url}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8300)
    options = parser.parse_args()
    asyncio.run(_serve(options.port))
