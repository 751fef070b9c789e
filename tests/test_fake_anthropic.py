"""The fake Anthropic API itself: the wire format the CLI tests rely on, read back raw."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.anthropic_server import FakeAnthropic, Reply, fail, use

HEADERS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
BODY = {"model": "claude-test", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    server = await FakeAnthropic().start()
    yield server
    await server.stop()


def parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for chunk in text.strip().split("\n\n"):
        name_line, data_line = chunk.split("\n")
        name = name_line.removeprefix("event: ")
        data = json.loads(data_line.removeprefix("data: "))
        assert data["type"] == name
        events.append((name, data))
    return events


async def test_streamed_text_and_tool_use(fake: FakeAnthropic) -> None:
    fake.script.append(use("Bash", text="Let me look.", command="ls -la /srv/app"))
    async with aiohttp.ClientSession() as http:
        url = f"{fake.base_url}/v1/messages?beta=true"
        async with http.post(url, json={**BODY, "stream": True}, headers=HEADERS) as resp:
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            events = parse_sse(await resp.text())
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert (start["content"], start["stop_reason"], start["model"]) == ([], None, "claude-test")
    blocks: dict[int, dict[str, Any]] = {}
    for name, data in events:
        if name == "content_block_start":
            blocks[data["index"]] = {**data["content_block"], "json": ""}
        elif name == "content_block_delta":
            block, delta = blocks[data["index"]], data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            else:
                block["json"] += delta["partial_json"]
    assert blocks[0]["type"] == "text"
    assert blocks[0]["text"] == "Let me look."
    assert blocks[1]["type"] == "tool_use"
    assert blocks[1]["name"] == "Bash"
    assert blocks[1]["id"].startswith("toolu_")
    assert json.loads(blocks[1]["json"]) == {"command": "ls -la /srv/app"}
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"]["output_tokens"] == 7
    assert fake.requests == [{**BODY, "stream": True}]


async def test_plain_reply_error_and_unknown_path(fake: FakeAnthropic) -> None:
    fake.script += [Reply(text="plain", input_tokens=3, output_tokens=2), fail(529)]
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{fake.base_url}/v1/messages", json=BODY, headers=HEADERS) as resp:
            message = await resp.json()
        async with http.post(f"{fake.base_url}/v1/messages", json=BODY, headers=HEADERS) as resp:
            assert resp.status == 529
            assert (await resp.json())["type"] == "error"
        async with http.get(f"{fake.base_url}/v1/models", headers=HEADERS) as resp:
            assert resp.status == 404
    assert message["content"] == [{"type": "text", "text": "plain"}]
    assert message["stop_reason"] == "end_turn"
    assert (message["usage"]["input_tokens"], message["usage"]["output_tokens"]) == (3, 2)
    assert fake.unhandled == ["GET /v1/models"]


async def test_echo_when_nothing_is_scripted(fake: FakeAnthropic) -> None:
    body = {**BODY, "messages": [{"role": "user", "content": [{"type": "text", "text": "ping"}]}]}
    url = f"{fake.base_url}/v1/messages"
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=HEADERS) as resp:
        message = await resp.json()
    assert message["content"] == [{"type": "text", "text": "echo: ping"}]
