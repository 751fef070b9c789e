"""Config reload without a restart: `/reload` in process, SIGHUP to a real `agentdeck run`.

Validated first (an invalid file changes nothing and the answer is its one-line error);
a valid one swaps in agents, users, bindings, budgets and the default agent in place;
what needs a restart is named; every reload is audited.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.config import load_config
from bot.reload import compare
from storage.models import AuditEvent
from tests.support.decks import DeckFactory
from tests.support.waiting import eventually

BASE = """
[deck]
default_agent = "echo"
[[users]]
id = "test:admin"
role = "admin"
[[users]]
id = "test:op"
role = "operator"
[[agents]]
name = "echo"
kind = "echo"
[[agents]]
name = "slow"
kind = "command"
command = ["/bin/sh", "-c", "sleep 1; echo slow-finished"]
timeout = 30
"""

CHANGED = """
[deck]
default_agent = "other"
rate_limit_per_minute = 99
[[users]]
id = "test:admin"
role = "admin"
[[users]]
id = "test:newcomer"
role = "operator"
[[agents]]
name = "echo"
kind = "echo"
[[agents]]
name = "other"
kind = "echo"
[[bindings]]
chat = "test:bound"
agent = "echo"
[[budgets]]
agent = "other"
daily_tokens = 1000
"""


async def audit_rows(deck, action: str) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    await deck.runner.flush()
    async with deck.db.session() as session:
        query = select(AuditEvent).where(AuditEvent.action == action)
        return list((await session.exec(query.order_by(col(AuditEvent.id)))).all())


async def test_reload_swaps_roster_users_bindings_and_budgets_in_place(
    deck_with_chat: DeckFactory, tmp_path: Path
) -> None:
    path = tmp_path / "deck.toml"
    path.write_text(BASE)
    async with deck_with_chat(load_config(path)) as (deck, chat):
        roster, access = deck.roster, deck.access
        await chat.say("hello", user="test:op")
        await chat.wait_for("echo: hello")
        path.write_text(CHANGED)
        await chat.say("/reload")
        answer = await chat.wait_for("Reloaded")
        assert answer.text == (
            f"Reloaded {path}: applied: agents (+other, -slow), users, bindings, budgets, "
            "deck.default_agent; needs a restart to take effect: deck.rate_limit_per_minute."
        )
        assert deck.roster is roster
        assert deck.access is access
        assert roster.names() == ["echo", "other"]
        await chat.say("to the new default", user="test:newcomer")
        await chat.wait_for("other: to the new default")
        await chat.say("bound again", chat="test:bound")
        await chat.wait_for("echo: bound again")
        await chat.say("I was removed", user="test:op")
        await chat.wait_for("Sorry, I only work for the people listed in my config.")
        assert deck.brakes.budgets.active
        # What needs a restart is kept as it runs, so the next reload names it again.
        assert deck.config.deck.rate_limit_per_minute == 30
        assert compare(deck.config, load_config(path)).restart == ("deck.rate_limit_per_minute",)
        [row] = await audit_rows(deck, "config.reloaded")
        assert row.actor == "test:admin"
        assert row.subject == str(path)
        assert row.detail["restart"] == ["deck.rate_limit_per_minute"]


async def test_an_invalid_file_changes_nothing_and_says_why_in_one_line(
    deck_with_chat: DeckFactory, tmp_path: Path
) -> None:
    path = tmp_path / "deck.toml"
    path.write_text(BASE)
    async with deck_with_chat(load_config(path)) as (deck, chat):
        before = deck.config
        path.write_text(BASE.replace("timeout = 30", 'timeout = "soon"'))
        await chat.say("/reload")
        answer = await chat.wait_for("Not reloaded")
        assert answer.text == (
            f"Not reloaded, nothing changed: {path}: agents[1].timeout: Input should be a "
            "valid number, unable to parse string as a number"
        )
        path.write_text("[deck\n")
        await chat.say("/reload")
        await chat.wait_for(f"Not reloaded, nothing changed: {path}: not valid TOML")
        path.unlink()
        await chat.say("/reload")
        await chat.wait_for(f"Not reloaded, nothing changed: {path}: no such file")
        assert deck.config is before
        assert deck.roster.names() == ["echo", "slow"]
        await chat.say("still here", user="test:op")
        await chat.wait_for("echo: still here")
        refused = await audit_rows(deck, "config.reload_refused")
        assert len(refused) == 3
        assert "agents[1].timeout" in refused[0].detail["error"]


async def test_only_admins_reload_and_a_running_run_keeps_its_agent(
    deck_with_chat: DeckFactory, tmp_path: Path
) -> None:
    path = tmp_path / "deck.toml"
    path.write_text(BASE)
    async with deck_with_chat(load_config(path)) as (deck, chat):
        await chat.say("/reload", user="test:op")
        await chat.wait_for("You need the admin role to use /reload.")
        await chat.say("/ask slow go", user="test:op")
        await eventually(deck.runner.active)
        path.write_text(CHANGED)
        await chat.say("/reload")
        await chat.wait_for("Reloaded")
        assert "slow" not in deck.roster
        await chat.wait_for("slow-finished")  # the run finished on the agent it started with
        assert await audit_rows(deck, "config.reloaded")


async def test_the_embedded_default_has_no_file_to_reload(deck_with_chat: DeckFactory) -> None:
    async with deck_with_chat(load_config(None)) as (deck, chat):
        await chat.say("/reload", user="console:local")
        answer = await chat.wait_for("Not reloaded")
        assert "(embedded default): not a config file on disk" in answer.text
        assert deck.roster.names() == ["host", "shell", "assistant"]


@pytest.mark.slow
async def test_sighup_reloads_a_running_process(tmp_path: Path, data_dir: Path) -> None:
    path = tmp_path / "deck.toml"
    path.write_text('[deck]\nadmin_chat = "console:local"\n' + BASE.replace("[deck]\n", ""))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        "--config",
        str(path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "AGENTDECK_DATA_DIR": str(data_dir)},
    )
    assert process.stdin is not None
    assert process.stdout is not None
    async with asyncio.timeout(60):
        await read_until(process.stdout, "agentdeck started")
        path.write_text(path.read_text().replace("timeout = 30", "timeout = 0"))
        process.send_signal(signal.SIGHUP)
        refused = await read_until(process.stdout, "Not reloaded")
        assert "agents[1].timeout: Input should be greater than 0" in refused
        path.write_text(path.read_text().replace('name = "slow"', 'name = "fresh"'))
        path.write_text(path.read_text().replace("timeout = 0", "timeout = 5"))
        process.send_signal(signal.SIGHUP)
        reloaded = await read_until(process.stdout, "Reloaded")
        assert "applied: agents (+fresh, -slow)" in reloaded
        process.stdin.write(b"/agents\n")
        await process.stdin.drain()
        listing = await read_until(process.stdout, "fresh (command, ready)")
        assert "slow" not in listing
        process.stdin.close()
        assert await process.wait() == 0
    log = (data_dir / "agentdeck.log").read_text()
    assert "SIGHUP: Not reloaded, nothing changed" in log
    assert "SIGHUP: Reloaded" in log

    # `agentdeck check` compares the file with the config the bot last ran with.
    env = {**os.environ, "AGENTDECK_DATA_DIR": str(data_dir)}
    assert (await agentdeck_check(path, env)).endswith(
        "Against the config the bot last ran with: no changes.\n"
    )
    text = path.read_text().replace("[deck]\n", "[deck]\nrate_limit_per_minute = 5\n")
    path.write_text(text + '[[agents]]\nname = "more"\nkind = "echo"\n')
    assert (await agentdeck_check(path, env)).splitlines()[-1] == (
        "Against the config the bot last ran with: applied: agents (+more); "
        "needs a restart to take effect: deck.rate_limit_per_minute."
    )


async def agentdeck_check(path: Path, env: dict[str, str]) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "check",
        "--config",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    async with asyncio.timeout(60):
        out, _ = await process.communicate()
    assert process.returncode == 0
    return out.decode()


async def read_until(stream: asyncio.StreamReader, needle: str) -> str:
    seen: list[str] = []
    while True:
        line = (await stream.readline()).decode()
        assert line, f"the process ended before printing {needle!r}: {''.join(seen)}"
        seen.append(line)
        if needle in line:
            return line
