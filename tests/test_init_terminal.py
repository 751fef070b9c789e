"""`agentdeck init` at a terminal, driven through a real pseudo-terminal against the fake
Telegram, Slack and OpenAI servers: each credential is checked at once (a wrong one is
said and asked again), tokens go to the vault and never into the file, and the config
it writes is one `agentdeck doctor` passes. Answers cannot add keys or users."""

from __future__ import annotations

import asyncio
import os
import sys
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.config import load_config
from storage.clock import SystemClock
from storage.db import Database
from storage.secrets import Vault
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_server import APP_TOKEN, BOT_TOKEN, FakeSlack
from tests.fakes.telegram_server import BOT_USERNAME, FakeTelegram
from tests.support.bot_process import agentdeck
from tests.support.pty_session import PtySession

LLM_KEY = "sk-init-terminal"
pytestmark = pytest.mark.slow


@pytest.fixture
async def servers() -> AsyncIterator[tuple[FakeTelegram, FakeSlack, FakeOpenAI]]:
    telegram = await FakeTelegram().start()
    slack = await FakeSlack().start()
    openai = await FakeOpenAI().start()
    openai.api_key = LLM_KEY
    yield telegram, slack, openai
    await openai.stop()
    await slack.stop()
    await telegram.stop()


def init(path: Path, data_dir: Path) -> PtySession:
    env = {**os.environ, "AGENTDECK_DATA_DIR": str(data_dir), "TERM": "xterm"}
    return PtySession([sys.executable, "-m", "bot", "init", str(path)], env=env)


async def answer(session: PtySession, question: bytes, text: str, *, count: int = 1) -> None:
    await session.expect(question, count=count)
    session.send(text.encode() + b"\r")


async def stored(data_dir: Path) -> dict[str, str]:
    async with Database(f"sqlite:///{data_dir / 'agentdeck.db'}") as db:
        vault = await Vault(db=db, data_dir=data_dir, clock=SystemClock()).load()
        return {name: vault.get(name) or "" for name in vault.names()}


async def test_init_asks_checks_at_once_and_writes_a_working_config(
    servers: tuple[FakeTelegram, FakeSlack, FakeOpenAI], data_dir: Path, tmp_path: Path
) -> None:
    telegram, slack, openai = servers
    path = tmp_path / "deck.toml"
    session = init(path, data_dir)
    try:
        await answer(session, b"Transports", "telegram, pager")
        await answer(session, b"Transports", "telegram, slack", count=2)  # "pager" was said
        await answer(session, b"Telegram Bot API URL", "http://127.0.0.1:1/api")
        await answer(session, b"Telegram Bot API URL", telegram.base_url, count=2)
        await answer(session, b"Telegram bot token", "999:wrong")
        await answer(session, b"Telegram bot token", telegram.token, count=2)
        await session.expect(f"ok: @{BOT_USERNAME}".encode())
        await answer(session, b"Your Telegram user id", '1001" role = "admin')
        await answer(session, b"Your Telegram user id", "1001", count=2)
        await answer(session, b"Slack Web API URL", slack.api_url)
        await answer(session, b"Slack bot token", "xoxb-revoked")
        await answer(session, b"Slack bot token", BOT_TOKEN, count=2)
        await answer(session, b"Slack app token", APP_TOKEN)
        await session.expect(b"ok: @deck in team")
        await answer(session, b"Your Slack member id", "")
        await answer(session, b"OpenAI-compatible API URL", openai.base_url)
        await answer(session, b"API key", "sk-wrong")
        await answer(session, b"API key", LLM_KEY, count=2)
        await answer(session, b"Model", 'gpt-4o-mini"\\n[[users]] id = "telegram:666')
        await session.expect(b"Start it: agentdeck run --config")
        assert await session.wait() == 0
    finally:
        session.close()
    screen = session.output.decode(errors="replace")
    assert "Not a transport: pager" in screen
    assert "must start with http(s):// and end in /bot" in screen
    assert (
        "Telegram rejected the bot token (401 Unauthorized): check [telegram] token. Try again"
        in screen
    )
    assert "That is not a telegram user id" in screen
    assert "slack.bot_token" in screen  # the revoked token was refused by name
    assert "The model API answered 401" in screen
    for value in (telegram.token, BOT_TOKEN, APP_TOKEN, LLM_KEY, "999:wrong", "sk-wrong"):
        assert value not in screen  # hidden as typed, never echoed back
    text = path.read_text()
    for value in (telegram.token, BOT_TOKEN, APP_TOKEN, LLM_KEY):
        assert value not in text
    data = tomllib.loads(text)
    assert data["users"] == [{"id": "telegram:1001", "role": "admin"}]  # none smuggled in
    assert data["agents"][-1]["model"] == 'gpt-4o-mini"\\n[[users]] id = "telegram:666'
    assert data["telegram"] == {"token": "secret:telegram_token", "base_url": telegram.base_url}
    config = load_config(path)
    assert config.slack is not None
    assert config.slack.base_url == slack.api_url
    assert await stored(data_dir) == {
        "telegram_token": telegram.token,
        "slack_bot_token": BOT_TOKEN,
        "slack_app_token": APP_TOKEN,
        "llm_api_key": LLM_KEY,
    }
    # the model name with a quote in it is kept literally; the doctor says it is not listed
    code, out, err = await agentdeck("doctor", "--config", str(path))
    assert code == 0, out + err
    assert f"ok    telegram: @{BOT_USERNAME} (polling)" in out
    assert "ok    slack: @deck in team" in out


async def test_init_without_a_terminal_writes_the_commented_starter(
    data_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "deck.toml"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "init",
        str(path),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    assert process.returncode == 0
    assert b"Edit it, then: agentdeck run --config" in out
    assert path.read_text().startswith("# agentdeck configuration.")
