"""What the scrubber must also know, and when it must run: the Telegram webhook secret
derived from the bot token, a master key rotated away, and a child's output scrubbed
before its tail is cut (a secret's value cut in two would leak its second half)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlmodel import select

from bot.app import open_deck
from roster.command import MAX_KEPT_OUTPUT
from roster.toolkit.process import MAX_OUTPUT
from storage.models import Run
from storage.secrets import KEY_FILE
from tests.fakes.openai_server import FakeOpenAI, call, say
from tests.fakes.telegram_server import FakeTelegram
from tests.support.config import make_config
from tests.support.decks import DeckFactory
from tests.support.network import free_port
from tests.support.telegram import ADMIN

SECRET = "Zq8first-half-Wx3|Kp5second-half-Yv7"
SECOND_HALF = SECRET[len(SECRET) // 2 :]


async def test_the_webhook_secret_derived_from_the_token_is_scrubbed(
    fake_telegram: FakeTelegram,
) -> None:
    port = free_port()
    config = make_config(f"""
[deck]
default_agent = "echo"
[telegram]
token = "env:TG_TOKEN"
base_url = "{fake_telegram.base_url}"
mode = "webhook"
webhook_url = "http://127.0.0.1:{port}/hook"
listen = "127.0.0.1"
port = {port}
path = "/hook"
[[users]]
id = "telegram:{ADMIN}"
role = "admin"
[[agents]]
name = "echo"
kind = "echo"
""")
    async with asyncio.timeout(30), open_deck(config) as (deck, _):
        assert fake_telegram.webhook is not None
        derived = fake_telegram.webhook[1]
        fake_telegram.user_says(f"the hook's secret is {derived}", user=ADMIN)
        (reply,) = await fake_telegram.wait_for("sendMessage")
        await deck.tasks.drain()
    assert derived not in reply.params["text"]
    assert "[redacted:derived:telegram.secret_token]" in reply.params["text"]


ECHO = """
[deck]
default_agent = "echo"
[[users]]
id = "test:admin"
role = "admin"
[[agents]]
name = "echo"
kind = "echo"
"""


async def test_a_master_key_rotated_away_is_still_scrubbed(
    deck_with_chat: DeckFactory, data_dir: Path
) -> None:
    async with deck_with_chat(make_config(ECHO)) as (deck, chat):
        await deck.vault.set("API_TOKEN", SECRET, by="test")
        old = (data_dir / KEY_FILE).read_text().strip()
        await deck.vault.rotate()
        assert (data_dir / KEY_FILE).read_text().strip() != old
        await chat.say(f"the old key was {old}")
        echoed = await chat.wait_for("echo:")
    assert old not in echoed.text
    assert "(retired)]" in echoed.text


def tool_config(server: FakeOpenAI, script: str) -> str:
    return f"""
[deck]
default_agent = "bot"
[llm]
base_url = "{server.base_url}"
api_key = "env:OPENAI_API_KEY"
max_retries = 0
[[users]]
id = "test:admin"
role = "admin"
[[agents]]
name = "bot"
kind = "llm"
model = "m"
tools = ["leak"]
[[agents]]
name = "printer"
kind = "command"
command = ["python3", "-c", {script!r}]
[[tools]]
name = "leak"
description = "Prints a lot"
command = ["python3", "-c", {script!r}]
approval = "never"
"""


async def test_a_tools_output_is_scrubbed_before_its_tail_is_cut(
    deck_with_chat: DeckFactory,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    script = f"import sys; sys.stdout.write('x' * 100 + {SECRET!r} + 'y' * "
    script += f"{MAX_OUTPUT - len(SECRET) // 2 - len('exit code 0')})"
    fake_openai.script = [call("leak"), say("read it")]
    async with deck_with_chat(make_config(tool_config(fake_openai, script))) as (deck, chat):
        await deck.vault.set("API_TOKEN", SECRET, by="test")
        await chat.say("print it")
        await chat.wait_for("bot: read it")
    (result,) = [m["content"] for m in fake_openai.requests[-1]["messages"] if m["role"] == "tool"]
    assert "yyyy" in result
    assert SECOND_HALF not in result
    assert SECOND_HALF[-6:] not in result


async def test_a_command_agents_output_is_scrubbed_before_its_tail_is_cut(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    # Lines of the secret past the limit: wherever a cut falls, it is inside some line.
    lines = MAX_KEPT_OUTPUT // (len(SECRET) + 1) + 500
    script = f"import sys; sys.stdout.write(({SECRET!r} + chr(10)) * {lines})"
    async with deck_with_chat(make_config(tool_config(fake_openai, script))) as (deck, chat):
        await deck.vault.set("API_TOKEN", SECRET, by="test")
        await chat.say("/ask printer go")
        await chat.wait_for("printer")
        await deck.tasks.drain()
        await deck.runner.flush()
        async with deck.db.session() as session:
            (run,) = (await session.exec(select(Run))).all()
        shown = "\n".join(chat.texts())
    assert run.output is not None
    assert "[redacted:API_TOKEN]" in run.output
    for where, text in {"stored run": run.output, "chat": shown}.items():
        assert SECOND_HALF[-6:] not in text, where
        assert SECRET[:6] not in text, where
