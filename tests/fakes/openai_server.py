"""A fake OpenAI-compatible API on 127.0.0.1: `/v1/chat/completions` with scripted replies,
`/v1/models`, and `/v1/audio/transcriptions` (multipart; the "transcript" of a file is
`transcripts[content]`, else its bytes read as UTF-8 — tests speak in text).

Each request takes the next scripted step (from `by_model[model]` first): a text answer, tool calls, an HTTP error,
a delay, or malformed JSON. With nothing scripted it answers `echo: <last user text>`.
Run it alone for benchmarks: `python -m tests.fakes.openai_server --port 8100 --delay 0`.
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
class Step:
    content: str | None = None
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
    raw: str | None = None  # sent as the body as is (malformed responses)
    # Streaming (`"stream": true`): the answer in pieces of `chunk_chars`, `chunk_delay`
    # seconds apart; `break_after`: the connection is cut after that many pieces.
    chunk_chars: int = 4
    chunk_delay: float = 0.0
    break_after: int | None = None


def say(content: str, delay: float = 0.0) -> Step:
    return Step(content=content, delay=delay)


def stream(
    content: str, *, delay: float = 0.0, chars: int = 4, break_after: int | None = None
) -> Step:
    """A text answer that streams in pieces of `chars`, `delay` seconds apart."""
    return Step(content=content, chunk_chars=chars, chunk_delay=delay, break_after=break_after)


def call(name: str, **arguments: Any) -> Step:
    return Step(tool_calls=[(name, arguments)])


def fail(status: int) -> Step:
    return Step(status=status)


class FakeOpenAI:
    def __init__(self, *, delay: float = 0.0) -> None:
        self.script: list[Step] = []
        # Steps for one model name, taken before `script` (a router and agents side by side).
        self.by_model: dict[str, list[Step]] = {}
        self.requests: list[dict[str, Any]] = []
        # /audio/transcriptions: (model, file name, bytes) of each call, and what to answer.
        self.transcriptions: list[tuple[str, str, bytes]] = []
        self.transcripts: dict[bytes, str] = {}
        # Streams: (the last user text, perf_counter when the first chunk went out).
        self.stream_starts: list[tuple[str, float]] = []
        self.streams_ended = 0  # streams whose last chunk and [DONE] went out
        self.keys: list[str] = []  # the bearer token of each completion request
        self.delay = delay
        # `GET /v1/models` lists these; with `api_key` set, any other key gets a 401 there.
        self.models = ["gpt-4o-mini", "gpt-4o"]
        self.api_key: str | None = None
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._complete)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/audio/transcriptions", self._transcribe)
        return app

    async def _transcribe(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            error = {"message": "file is required", "type": "invalid_request_error"}
            return web.json_response({"error": error}, status=400)
        content = upload.file.read()
        self.transcriptions.append((str(form.get("model", "")), upload.filename, content))
        text = self.transcripts.get(content, content.decode("utf-8", "replace"))
        return web.json_response({"text": text})

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

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.keys.append(request.headers.get("Authorization", "").removeprefix("Bearer "))
        step = self._next_step(body.get("model", ""))
        delay = step.delay if step and step.delay else self.delay
        if delay:
            await asyncio.sleep(delay)
        if step is not None and step.raw is not None:
            return web.Response(text=step.raw, content_type="application/json")
        if step is not None and step.status != 200:
            error = {
                "error": {"message": f"scripted failure {step.status}", "type": "server_error"}
            }
            return web.json_response(error, status=step.status)
        if body.get("stream"):
            completion = {**self._completion(body, step), "_messages": body["messages"]}
            return await self._stream(request, completion, step or Step())
        return web.json_response(self._completion(body, step))

    async def _stream(
        self, request: web.Request, completion: dict[str, Any], step: Step
    ) -> web.StreamResponse:
        """The completion as server-sent chunks, as the API streams it."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        message = completion["choices"][0]["message"]
        content = message.get("content") or ""
        pieces = [
            content[i : i + step.chunk_chars] for i in range(0, len(content), step.chunk_chars)
        ]
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": p} for p in pieces]
        for index, tool_call in enumerate(message.get("tool_calls") or []):
            deltas.append({"tool_calls": [{"index": index, **tool_call}]})
        users = [m for m in completion["_messages"] if m["role"] == "user"]
        asked: dict[str, Any] = users[-1] if users else {}
        for number, delta in enumerate(deltas):
            if number == 0:
                self.stream_starts.append((str(asked.get("content", "")), time.perf_counter()))
            if step.break_after is not None and number >= step.break_after:
                assert request.transport is not None
                request.transport.close()  # cut mid-way: no [DONE]
                return response
            await self._event(
                response, completion, {"index": 0, "delta": delta, "finish_reason": None}
            )
            if step.chunk_delay:
                await asyncio.sleep(step.chunk_delay)
        finish = completion["choices"][0]["finish_reason"]
        await self._event(response, completion, {"index": 0, "delta": {}, "finish_reason": finish})
        usage = {"id": completion["id"], "object": "chat.completion.chunk", "created": 0,
                 "model": completion["model"], "choices": [], "usage": completion["usage"]}  # fmt: skip
        await response.write(f"data: {json.dumps(usage)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        self.streams_ended += 1
        await response.write_eof()
        return response

    async def _event(
        self, response: web.StreamResponse, completion: dict[str, Any], choice: dict[str, Any]
    ) -> None:
        chunk = {
            "id": completion["id"],
            "object": "chat.completion.chunk",
            "created": completion["created"],
            "model": completion["model"],
            "choices": [choice],
        }
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

    async def _models(self, request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.api_key is not None and given != self.api_key:
            error = {"message": "Incorrect API key provided", "type": "invalid_request_error"}
            return web.json_response({"error": error}, status=401)
        listed = [
            {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models
        ]
        return web.json_response({"object": "list", "data": listed})

    def _next_step(self, model: str) -> Step | None:
        own = self.by_model.get(model)
        if own:
            return own.pop(0)
        return self.script.pop(0) if self.script else None

    def _completion(self, body: dict[str, Any], step: Step | None) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": None}
        if step is not None and step.tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{next(self._ids)}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
                for name, args in step.tool_calls
            ]
            finish = "tool_calls"
        else:
            last = next((m for m in reversed(body["messages"]) if m["role"] == "user"), None)
            message["content"] = (
                step.content if step else f"echo: {last['content'] if last else ''}"
            )
            finish = "stop"
        return {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        }


async def _serve(port: int, delay: float) -> None:
    server = await FakeOpenAI(delay=delay).start(port)
    print(f"fake OpenAI on {server.base_url}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--delay", type=float, default=0.0)
    options = parser.parse_args()
    asyncio.run(_serve(options.port, options.delay))
