"""A tool's child (`run_command`, a `[[tools]]` template) is recorded in its run's row like
a command agent's, so a bot cut by kill -9 has that tool's process group stopped at its
next start. A real `agentdeck run` polling the fake Telegram, its llm agent scripted by
the fake OpenAI API; the tool writes its pid (its group: a session of its own)."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest
from sqlmodel import select

from bot.deck import Deck
from storage.db import Database, sqlite_url
from storage.models import Run, RunState
from tests.fakes.openai_server import FakeOpenAI, call, say
from tests.fakes.telegram_server import FakeTelegram
from tests.support.chaos import BotProcess
from tests.support.config import make_config
from tests.support.decks import DeckFactory
from tests.support.process_groups import group_alive, read_pid
from tests.support.telegram import ADMIN
from tests.support.waiting import eventually


def deck_toml(telegram: FakeTelegram | None, openai: FakeOpenAI, pid: Path) -> str:
    chat = (
        f'[telegram]\ntoken = "env:TG_TOKEN"\nbase_url = "{telegram.base_url}"\n'
        f'[[users]]\nid = "telegram:{ADMIN}"\nrole = "admin"\n'
        if telegram
        else '[[users]]\nid = "test:admin"\nrole = "admin"\n'
    )
    return f"""
[deck]
default_agent = "bot"
[scheduler]
enabled = false
[llm]
base_url = "{openai.base_url}"
api_key = "env:OPENAI_API_KEY"
max_retries = 0
{chat}
[[agents]]
name = "bot"
kind = "llm"
model = "m"
tools = ["sleeper", "run_command"]
[[tools]]
name = "sleeper"
description = "Sleeps a while"
command = ["/bin/sh", "-c", "echo $$ > {pid}; sleep 60"]
approval = "never"
"""


async def _group_stored(url: str, pgid: int) -> bool:
    async with Database(url) as db, db.session() as session:
        return any(r.process_group == pgid for r in (await session.exec(select(Run))).all())


def _stop_group(pgid: int | None) -> None:
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


@pytest.mark.slow
async def test_a_templated_tool_cut_by_kill_9_has_its_group_stopped_at_the_next_start(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    telegram = await FakeTelegram().start()
    pid = tmp_path / "pid.txt"
    config = tmp_path / "deck.toml"
    config.write_text(deck_toml(telegram, fake_openai, pid))
    env = {"TG_TOKEN": telegram.token, "OPENAI_API_KEY": "sk-test"}
    bot = BotProcess(tmp_path / "data", config, env)
    fake_openai.script = [call("sleeper")]
    pgid = None
    try:
        await bot.start()
        telegram.user_says("take a nap", user=ADMIN)
        pgid = await read_pid(pid)
        # Written at once after the fork (as for command agents): kill once it is stored.
        url = sqlite_url(tmp_path / "data")
        await eventually(lambda: _group_stored(url, pgid), 20)
        await bot.kill()
        assert group_alive(pgid)  # the tool's group goes on without the bot

        await bot.start()
        await eventually(
            lambda: any("interrupted by a restart" in t for t in telegram.sent_texts(ADMIN)), 30
        )
        assert not group_alive(pgid)
        report = next(t for t in telegram.sent_texts(ADMIN) if "interrupted" in t)
        assert "its processes were stopped" in report
        assert await bot.stop() == 0
    finally:
        if bot.process is not None and bot.process.returncode is None:
            await bot.kill()
        _stop_group(pgid)
        await telegram.stop()
    async with Database(sqlite_url(tmp_path / "data")) as db, db.session() as session:
        runs = (await session.exec(select(Run))).all()
    (cut,) = [r for r in runs if r.status == RunState.INTERRUPTED]  # beside it: Run again
    assert cut.process_group == pgid


async def _stored_group_is(deck: Deck, pgid: int) -> bool:
    return await _stored_group(deck) == pgid


async def _stored_group(deck: Deck) -> int | None:
    await deck.runner.flush()
    async with deck.db.session() as session:
        runs = (await session.exec(select(Run))).all()
    return runs[0].process_group if runs else None


async def test_run_command_records_its_process_group_in_the_run(
    deck_with_chat: DeckFactory,
    fake_openai: FakeOpenAI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    pid = tmp_path / "pid.txt"
    argv = ["/bin/sh", "-c", f"echo $$ > {pid}; sleep 60"]
    fake_openai.script = [call("run_command", argv=argv), say("done")]
    config = make_config(deck_toml(None, fake_openai, tmp_path / "unused"))
    pgid = None
    try:
        async with deck_with_chat(config) as (deck, chat):
            await chat.say("run it")
            card = await chat.wait_for("Approval needed")
            await chat.press(card.message.buttons[0].value)
            pgid = await read_pid(pid)
            assert await eventually(lambda: _stored_group_is(deck, pgid))
            await chat.say("/stop bot")
            await chat.wait_for("stopped")
        assert not group_alive(pgid)
    finally:
        _stop_group(pgid)
