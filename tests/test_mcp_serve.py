"""agentdeck as an MCP server, driven by the `mcp` SDK's own client.

Over stdio the real `agentdeck mcp` process is started by the SDK's `stdio_client` (as
Claude Desktop would); over streamable HTTP the deck serves `[mcp] port` in this
process. Chat is the fake Telegram server: approval cards of runs asked over MCP are
posted there and wait for a press. Attacks: a caller whose role is too low is refused
(and audited), an HTTP request without the bearer token gets 401 and nothing runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from bot.app import App, open_app
from tests.fakes.telegram_server import FakeTelegram
from tests.support.config import make_config
from tests.support.decks import audit_actions
from tests.support.telegram import ADMIN

VIEWER = 1002  # a viewer: may list, may not ask
TOKEN = "serve-Token-4b9e2f7a10c3"
AGENTDECK = Path(sys.executable).parent / "agentdeck"


def config_text(fake: FakeTelegram, *, caller: int = ADMIN, http: bool = False) -> str:
    listen = 'port = 0\ntoken = "env:MCP_SERVE_TOKEN"\n' if http else ""
    return f"""
[deck]
default_agent = "echo"
[telegram]
token = "env:TG_TOKEN"
base_url = "{fake.base_url}"
[mcp]
user = "telegram:{caller}"
chat = "telegram:{ADMIN}"
{listen}
[[users]]
id = "telegram:{ADMIN}"
role = "admin"
[[users]]
id = "telegram:{VIEWER}"
role = "viewer"
[[agents]]
name = "echo"
kind = "echo"
description = "says it back"
[[agents]]
name = "shell"
kind = "command"
command = ["echo", "deployed", "{{input}}"]
approval = "always"
"""


@pytest.fixture
async def fake_telegram(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeTelegram]:
    server = await FakeTelegram().start()
    monkeypatch.setenv("TG_TOKEN", server.token)
    monkeypatch.setenv("MCP_SERVE_TOKEN", TOKEN)
    yield server
    await server.stop()


def said(fake: FakeTelegram, needle: str) -> bool:
    return any(needle in text for text in fake.sent_texts(ADMIN))


def press(fake: FakeTelegram, label: str) -> None:
    (mid,) = [mid for (_, mid), m in fake.messages.items() if "Approval needed" in m["text"]]
    keyboard = fake.messages[(ADMIN, mid)]["reply_markup"]["inline_keyboard"]
    (data,) = [str(b["callback_data"]) for row in keyboard for b in row if b["text"] == label]
    fake.press(data, message_id=mid, chat=ADMIN, user=ADMIN)


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, types.TextContent))


async def gated_call_waits_for_a_press(session: ClientSession, fake: FakeTelegram) -> None:
    """ask_agent on an always-approve agent: no answer until Approve is pressed in chat."""
    calling = asyncio.create_task(
        session.call_tool("ask_agent", {"agent": "shell", "text": "prod"})
    )
    await fake.wait_until(lambda: said(fake, "Approval needed"), timeout=30)
    await asyncio.sleep(0.2)  # the call is still waiting: nothing may answer it before the press
    assert not calling.done()
    press(fake, "Approve")
    result = await asyncio.wait_for(calling, 30)
    assert not result.isError
    assert text_of(result).strip() == "deployed prod"


# --- stdio: the real `agentdeck mcp` process -----------------------------------------


@pytest.mark.slow
async def test_agentdeck_mcp_over_stdio_lists_asks_and_waits_for_a_press(
    fake_telegram: FakeTelegram, tmp_path: Path, data_dir: Path
) -> None:
    config = tmp_path / "deck.toml"
    config.write_text(config_text(fake_telegram))
    params = StdioServerParameters(
        command=str(AGENTDECK),
        args=["mcp", "--config", str(config)],
        env={
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/"),
            "TG_TOKEN": fake_telegram.token,
            "AGENTDECK_DATA_DIR": str(data_dir),
        },
    )
    async with (
        asyncio.timeout(90),
        stdio_client(params) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = {tool.name for tool in (await session.list_tools()).tools}
        assert tools == {
            "list_agents",
            "ask_agent",
            "list_runs",
            "list_approvals",
            "list_jobs",
            "create_job",
        }
        agents = text_of(await session.call_tool("list_agents", {}))
        assert "echo (echo, ready) says it back" in agents
        answer = await session.call_tool("ask_agent", {"agent": "echo", "text": "hello deck"})
        assert text_of(answer) == "hello deck"
        await gated_call_waits_for_a_press(session, fake_telegram)
        runs = text_of(await session.call_tool("list_runs", {}))
        assert "shell done" in runs
        assert "echo done" in runs


# --- streamable HTTP: `[mcp] port` -----------------------------------------------------


@contextlib.asynccontextmanager
async def http_deck(fake: FakeTelegram, caller: int = ADMIN) -> AsyncIterator[App]:
    config = make_config(config_text(fake, caller=caller, http=True))
    async with asyncio.timeout(60), open_app(config) as app:
        yield app


@contextlib.asynccontextmanager
async def http_session(app: App, token: str = TOKEN) -> AsyncIterator[ClientSession]:
    assert app.mcp_http is not None
    url = f"http://127.0.0.1:{app.mcp_http.port}/mcp"
    client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with (
        client,
        streamable_http_client(url, http_client=client) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def test_over_http_a_gated_action_waits_for_a_press_in_chat(
    fake_telegram: FakeTelegram,
) -> None:
    async with http_deck(fake_telegram) as app, http_session(app) as session:
        deck = app.deck
        pending = asyncio.create_task(
            session.call_tool("ask_agent", {"agent": "shell", "text": "staging"})
        )
        await fake_telegram.wait_until(lambda: said(fake_telegram, "Approval needed"), timeout=30)
        listed = text_of(await session.call_tool("list_approvals", {}))
        assert "shell: echo deployed staging" in listed
        press(fake_telegram, "Approve")
        result = await asyncio.wait_for(pending, 30)
        assert text_of(result).strip() == "deployed staging"
        assert "mcp.call" in await audit_actions(deck)


async def test_over_http_a_denied_action_is_a_tool_error(fake_telegram: FakeTelegram) -> None:
    async with http_deck(fake_telegram) as app, http_session(app) as session:
        pending = asyncio.create_task(
            session.call_tool("ask_agent", {"agent": "shell", "text": "prod"})
        )
        await fake_telegram.wait_until(lambda: said(fake_telegram, "Approval needed"), timeout=30)
        press(fake_telegram, "Deny")
        result = await asyncio.wait_for(pending, 30)
        assert result.isError
        assert "shell ended denied" in text_of(result)


async def test_an_admin_caller_creates_a_job_that_reports_to_the_chat(
    fake_telegram: FakeTelegram,
) -> None:
    async with http_deck(fake_telegram) as app, http_session(app) as session:
        deck = app.deck
        created = await session.call_tool(
            "create_job", {"agent": "echo", "text": "morning report", "when": "every 1h"}
        )
        assert not created.isError
        assert "created: interval" in text_of(created)
        listed = text_of(await session.call_tool("list_jobs", {}))
        assert "echo: morning report" in listed
        bad = await session.call_tool(
            "create_job", {"agent": "nope", "text": "x", "when": "every 1h"}
        )
        assert bad.isError
        assert "No agent named 'nope'" in text_of(bad)
        assert deck.scheduler is not None
        rows, _ = await deck.scheduler.store.listed(limit=10)
        assert [(job.chat_id, job.created_by) for job in rows] == [
            (f"telegram:{ADMIN}", f"telegram:{ADMIN}")
        ]


async def test_a_caller_with_a_lower_role_is_refused_and_audited(
    fake_telegram: FakeTelegram,
) -> None:
    async with http_deck(fake_telegram, caller=VIEWER) as app, http_session(app) as session:
        deck = app.deck
        assert "echo" in text_of(await session.call_tool("list_agents", {}))
        asked = await session.call_tool("ask_agent", {"agent": "shell", "text": "prod"})
        assert asked.isError
        assert text_of(asked) == "You need the operator role to use ask_agent."
        job = await session.call_tool(
            "create_job", {"agent": "echo", "text": "hi", "when": "every 1h"}
        )
        assert job.isError
        assert "admin role" in text_of(job)
        await deck.runner.flush()
        assert "refused.role" in await audit_actions(deck)
        assert deck.runner.active() == {}
    assert not said(fake_telegram, "Approval needed")


async def test_an_http_request_without_the_token_gets_401_and_runs_nothing(
    fake_telegram: FakeTelegram,
) -> None:
    async with http_deck(fake_telegram) as app:
        deck = app.deck
        assert app.mcp_http is not None
        url = f"http://127.0.0.1:{app.mcp_http.port}/mcp"
        body: dict[str, Any] = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "ask_agent", "arguments": {"agent": "echo", "text": "x"}},
        }
        headers = {"Accept": "application/json, text/event-stream"}
        async with aiohttp.ClientSession() as http:
            for auth in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                async with http.post(url, json=body, headers={**headers, **auth}) as response:
                    assert response.status == 401
        await deck.runner.flush()
        assert "run.started" not in await audit_actions(deck)
        assert "refused.unauthorised" in await audit_actions(deck)


def test_serving_over_http_needs_a_token_and_a_caller() -> None:
    from bot.errors import ConfigError

    with pytest.raises(ConfigError, match="bearer token"):
        make_config('[mcp]\nport = 0\nuser = "telegram:1"\nchat = "telegram:1"\n')
    with pytest.raises(ConfigError, match="who MCP callers act as"):
        make_config('[mcp]\nport = 0\ntoken = "env:X"\n')


@pytest.mark.slow
def test_agentdeck_mcp_without_a_caller_says_what_to_set(tmp_path: Path, data_dir: Path) -> None:
    import subprocess

    config = tmp_path / "deck.toml"
    config.write_text('[[agents]]\nname = "echo"\nkind = "echo"\n')
    done = subprocess.run(
        [str(AGENTDECK), "mcp", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""  # stdout is the MCP channel: nothing else is written there
    assert done.stderr.strip() == (
        "agentdeck: [mcp] user and chat are needed: who MCP calls act as, and where runs report"
    )
