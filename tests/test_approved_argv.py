"""What an approver approves is what runs, and no secret's value is stored to get there.

The attack (issue 14, point 10): a message or a model's tool call holds a secret's
value. The card was scrubbed, but `approvals.action` (and the waiting run's state)
kept the raw value, while the run, resumed from the scrubbed input, got
`[redacted:NAME]`. Now the stored action is what the card shows, the state keeps the
value by reference only, and the process gets the real value once approved — also
after a restart between the request and the press.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest
from sqlmodel import select

from bot.deck import Deck
from storage.models import Approval, Job, Run
from tests.fakes.openai_server import FakeOpenAI, call, say
from tests.support.config import make_config
from tests.support.data import database_bytes
from tests.support.decks import DeckFactory

CORE = "9f8e7d6c5b4a"  # needs no escaping: found in the database in any spelling
VALUE = f'deploy-Tök€n-"quoted"-back\\slash-{CORE}'
RECORD = "import sys; open(sys.argv[1], 'a').write(repr(sys.argv[2:]) + '\\n')"


def config_text(argv_log: Path, extra: str = "") -> str:
    return f"""
[deck]
default_agent = "deploy"
[[users]]
id = "test:admin"
role = "admin"
[[agents]]
name = "deploy"
kind = "command"
command = {json.dumps([sys.executable, "-c", RECORD, str(argv_log), "{input}"])}
approval = "always"
{extra}
"""


def executed(argv_log: Path) -> list[list[str]]:
    """The argv (after the script and log path) of every run, in order."""
    if not argv_log.exists():
        return []
    return [ast.literal_eval(line) for line in argv_log.read_text().splitlines()]


async def approval_rows(deck: Deck) -> list[Approval]:
    await deck.runner.flush()
    async with deck.db.session() as session:
        return list((await session.exec(select(Approval))).all())


def holds_value(stored: object) -> bool:
    return CORE in json.dumps(stored)


async def test_a_message_holding_a_secret_runs_with_the_value_and_stores_none(
    deck_with_chat: DeckFactory, data_dir: Path, tmp_path: Path
) -> None:
    argv_log = tmp_path / "argv.log"
    async with deck_with_chat(make_config(config_text(argv_log))) as (deck, chat):
        await deck.vault.set("DEPLOY_TOKEN", VALUE, by="test")
        await chat.say(f"/ask deploy {VALUE}")
        card = await chat.wait_for("Approval needed")
        assert "[redacted:DEPLOY_TOKEN]" in card.text
        (row,) = await approval_rows(deck)
        assert row.action["argv"][-1] == "[redacted:DEPLOY_TOKEN]"  # what the card showed
        assert not holds_value(row.action)
        assert executed(argv_log) == []
        await chat.press(card.message.buttons[0].value)
        await chat.wait_for("exit 0")
        await deck.runner.flush()
    assert executed(argv_log) == [[VALUE]]  # the real value, once
    assert CORE.encode() not in database_bytes(data_dir)


async def test_the_value_survives_a_restart_by_reference_only(
    deck_with_chat: DeckFactory, data_dir: Path, tmp_path: Path
) -> None:
    argv_log = tmp_path / "argv.log"
    config = make_config(config_text(argv_log))
    async with deck_with_chat(config) as (deck, chat):
        await deck.vault.set("DEPLOY_TOKEN", VALUE, by="test")
        await chat.say(f"/ask deploy now {VALUE}")
        card = await chat.wait_for("Approval needed")
        async with deck.db.session() as session:
            (run,) = (await session.exec(select(Run))).all()
        assert not holds_value(run.state)
        press = card.message.buttons[0].value
    assert CORE.encode() not in database_bytes(data_dir)
    async with deck_with_chat(config) as (deck, chat):
        await chat.press(press)
        await chat.wait_for("exit 0")
    assert executed(argv_log) == [[f"now {VALUE}"]]


async def test_a_secret_deleted_before_the_press_runs_nothing_and_says_why(
    deck_with_chat: DeckFactory, tmp_path: Path
) -> None:
    argv_log = tmp_path / "argv.log"
    async with deck_with_chat(make_config(config_text(argv_log))) as (deck, chat):
        await deck.vault.set("DEPLOY_TOKEN", VALUE, by="test")
        await chat.say(f"/ask deploy {VALUE}")
        card = await chat.wait_for("Approval needed")
        await deck.vault.delete("DEPLOY_TOKEN")
        await chat.press(card.message.buttons[0].value)
        said = await chat.wait_for("no longer set")
    assert "DEPLOY_TOKEN" in said.text
    assert executed(argv_log) == []


def tool_config(server: FakeOpenAI, argv_log: Path) -> str:
    command = [sys.executable, "-c", RECORD, str(argv_log), "{target}"]
    return f"""
[deck]
default_agent = "bot"
[llm]
base_url = "{server.base_url}"
api_key = "env:TEST_OPENAI_KEY"
max_retries = 0
[[users]]
id = "test:admin"
role = "admin"
[[agents]]
name = "bot"
kind = "llm"
model = "m"
tools = ["ship"]
secrets = ["DEPLOY_TOKEN"]
[[tools]]
name = "ship"
description = "Ship to a target"
command = {json.dumps(command)}
approval = "always"
[tools.parameters]
type = "object"
required = ["target"]
[tools.parameters.properties.target]
type = "string"
"""


async def test_a_model_tool_call_with_a_value_or_a_reference_runs_as_approved(
    deck_with_chat: DeckFactory,
    fake_openai: FakeOpenAI,
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")
    argv_log = tmp_path / "argv.log"
    fake_openai.script = [
        call("ship", target=f"x{VALUE}"),  # a value the model got hold of somehow
        call("ship", target="secret:DEPLOY_TOKEN"),  # a reference, resolved when it runs
        say("shipped"),
    ]
    async with deck_with_chat(make_config(tool_config(fake_openai, argv_log))) as (deck, chat):
        await deck.vault.set("DEPLOY_TOKEN", VALUE, by="test")
        await chat.say("ship it")
        first = await chat.wait_for("Approval needed")
        assert "x[redacted:DEPLOY_TOKEN]" in first.text
        await chat.press(first.message.buttons[0].value)
        second = await chat.wait_for("secret:DEPLOY_TOKEN")
        await chat.press(second.message.buttons[0].value)
        await chat.wait_for("bot: shipped")
        rows = await approval_rows(deck)
    assert [row.action["argv"][-1] for row in rows] == [
        "x[redacted:DEPLOY_TOKEN]",
        "secret:DEPLOY_TOKEN",
    ]
    assert not any(holds_value(row.action) for row in rows)
    assert executed(argv_log) == [[f"x{VALUE}"], [VALUE]]
    assert CORE.encode() not in database_bytes(data_dir)


async def test_a_job_whose_text_holds_a_secret_is_refused_and_stores_nothing(
    deck_with_chat: DeckFactory, data_dir: Path, tmp_path: Path
) -> None:
    """A job's text is kept in the database and run again and again: it may not hold a
    value (`/every 1h deploy <token>`); the agent's `env` is the way to give it one."""
    argv_log = tmp_path / "argv.log"
    async with deck_with_chat(make_config(config_text(argv_log))) as (deck, chat):
        await deck.vault.set("DEPLOY_TOKEN", VALUE, by="test")
        await chat.say(f"/every 1h deploy {VALUE}")
        refusal = await chat.wait_for("The job was not created")
        assert "holds the value of a stored secret" in refusal.text
        await deck.runner.flush()
        async with deck.db.session() as session:
            assert (await session.exec(select(Job))).all() == []
    assert CORE.encode() not in database_bytes(data_dir)
    assert executed(argv_log) == []
