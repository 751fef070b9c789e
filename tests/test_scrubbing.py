"""One scrubber for every secret the bot knows: vault values and credentials from `env:`.

The attacks: a command agent reads the bot's token (from a `.env` file, or from
`/proc/<bot>/environ`, which a child of the same user may read) and prints it; a user pastes the model's API key or
the master key into a message; a secret's value holds non-ASCII, `"` or `\\`, which the
audit log scrubbed only after `json.dumps` had escaped it, so it stayed readable.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from bot.app import open_deck
from bot.cli import _setup_logging
from bot.deck import Deck
from storage.models import AuditEvent, Run, ToolCall
from storage.secrets import new_key
from tests.fakes.openai_server import FakeOpenAI, call, say
from tests.fakes.telegram_server import FakeTelegram
from tests.support.bot_process import agentdeck
from tests.support.config import make_config
from tests.support.decks import DeckFactory
from tests.support.telegram import ADMIN


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:], root.level = handlers, level


async def stored(deck: Deck) -> dict[str, str]:
    """Runs' outputs and inputs, tool calls and audit rows, as the database holds them."""
    await deck.runner.flush()
    async with deck.db.session() as session:
        runs = (await session.exec(select(Run))).all()
        calls = (await session.exec(select(ToolCall))).all()
        events = (await session.exec(select(AuditEvent))).all()
    return {
        "runs": "\n".join(f"{r.input}\n{r.output}\n{r.error}" for r in runs),
        "tool calls": json.dumps([[c.arguments, c.result] for c in calls], ensure_ascii=False),
        "audit": json.dumps([[e.action, e.subject, e.detail] for e in events], ensure_ascii=False),
    }


LEAKY = """
[deck]
default_agent = "leaky"
[telegram]
token = "env:TG_TOKEN"
base_url = "{base_url}"
[[users]]
id = "telegram:1001"
role = "admin"
[[agents]]
name = "leaky"
kind = "command"
command = ["cat", "{dotenv}"]
"""


@pytest.mark.usefixtures("restore_logging")
async def test_a_token_an_agent_reads_and_prints_is_scrubbed_everywhere(
    fake_telegram: FakeTelegram, data_dir: Path
) -> None:
    token = fake_telegram.token
    dotenv = data_dir.parent / ".env"  # what a deploy directory holds, or /proc/<bot>/environ
    dotenv.write_text(f"TG_TOKEN={token}\n")
    text = LEAKY.replace("{base_url}", fake_telegram.base_url).replace("{dotenv}", str(dotenv))
    config = make_config(text)
    _setup_logging(config)
    async with asyncio.timeout(30), open_deck(config) as (deck, _):
        fake_telegram.user_says(f"/ask leaky is this {token} yours?", user=ADMIN)
        await fake_telegram.wait_until(
            lambda: any("exit" in text for text in fake_telegram.sent_texts(ADMIN))
        )
        logging.getLogger("bot.runs.runner").warning("the agent printed %s", token)
        rows = await stored(deck)
    shown = "\n".join(fake_telegram.sent_texts(ADMIN))
    assert "TG_TOKEN=[redacted:env:TG_TOKEN]" in shown  # it read the token; chat got none
    log_text = (data_dir / "agentdeck.log").read_text()
    assert "the agent printed [redacted:env:TG_TOKEN]" in log_text
    assert "[redacted:env:TG_TOKEN]" in rows["audit"]  # the message as the audit keeps it
    for where, text in {"chat": shown, "log": log_text, **rows}.items():
        assert token not in text, where


ECHO = """
[deck]
default_agent = "echo"
[llm]
api_key = "env:MODEL_KEY"
[[users]]
id = "test:admin"
role = "admin"
[[agents]]
name = "echo"
kind = "echo"
[[agents]]
name = "deploy"
kind = "command"
command = ["true"]
env = { DEPLOY_KEY = "env:DEPLOY_KEY", HOME = "env:HOME" }
"""


async def test_credentials_from_env_are_scrubbed_from_the_start(
    deck_with_chat: DeckFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    master = new_key()
    values = {
        "MODEL_KEY": "sk-model-key-from-the-environment",
        "DEPLOY_KEY": "deploy-key-of-an-agent-that-never-ran",
        "AGENTDECK_MASTER_KEY": master,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    async with deck_with_chat(make_config(ECHO)) as (deck, chat):
        await chat.say(" | ".join(values.values()))
        echoed = await chat.wait_for("echo:")
        home = Path.home()
        await chat.say(f"my home is {home}")
        await chat.wait_for("my home is")
        rows = await stored(deck)
    assert echoed.text == (
        "echo: [redacted:env:MODEL_KEY] | [redacted:env:DEPLOY_KEY]"
        " | [redacted:env:AGENTDECK_MASTER_KEY]"
    )
    # HOME is inherited by every child anyway: naming it in `env` makes it no credential.
    assert f"my home is {home}" in chat.texts()[-1]
    for where, text in rows.items():
        for value in values.values():
            assert value not in text, where


async def test_short_or_blank_credentials_are_not_scrubbed_and_say_so(
    deck_with_chat: DeckFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MODEL_KEY", "ab")  # would turn every "ab" of every message unreadable
    monkeypatch.setenv("DEPLOY_KEY", "    ")
    caplog.set_level(logging.WARNING)
    async with deck_with_chat(make_config(ECHO)) as (_deck, chat):
        await chat.say("about a tab     stop")
        answer = await chat.wait_for("echo:")
    assert answer.text == "echo: about a tab     stop"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("env:MODEL_KEY" in w and "not scrubbed" in w for w in warnings), warnings


def test_the_scrubber_finds_values_in_any_spelling_and_keeps_markers_readable() -> None:
    from storage.scrubber import Scrubber

    scrubber = Scrubber()
    value = 'Grüße-"x\\y'
    scrubber.use("vault", {"UNI": value})
    assert scrubber.redact(f"a {value} b") == "a [redacted:UNI] b"
    for spelled in (json.dumps(value), json.dumps(value, ensure_ascii=False), repr(value)):
        assert value not in scrubber.redact(spelled)
        assert "[redacted:UNI]" in scrubber.redact(spelled)
    assert scrubber.redact_tree({"k": [value, 1, None], value: (value,)}) == {
        "k": ["[redacted:UNI]", 1, None],
        "[redacted:UNI]": ["[redacted:UNI]"],
    }
    scrubber.add("env:SHORT", "ab")
    assert scrubber.redact("about") == "about"


WEIRD = 'Grüße-"x\\y-Ω'
AUDITED = """
[deck]
default_agent = "echo"
[[users]]
id = "test:admin"
role = "admin"
[[agents]]
name = "echo"
kind = "echo"
[[agents]]
name = "gated"
kind = "command"
command = ["echo", "{input}"]
approval = "always"
"""


@pytest.mark.slow
async def test_audit_rows_hold_no_value_with_non_ascii_quotes_or_backslashes(
    deck_with_chat: DeckFactory, data_dir: Path
) -> None:
    async with deck_with_chat(make_config(AUDITED)) as (deck, chat):
        await deck.vault.set("WEIRD", WEIRD, by="test")
        await chat.say(f"/ask gated {WEIRD}")  # audited: run.started and approval.requested
        await chat.wait_for("Approval needed")
        await chat.say(f"/ask echo {WEIRD}")
        await chat.wait_for("echo:")
        rows = await stored(deck)
    assert "[redacted:WEIRD]" in rows["audit"]
    assert WEIRD not in rows["audit"]
    code, out, err = await agentdeck("audit", "tail", "-n", "50", data_dir=data_dir)
    assert code == 0, err
    assert "approval.requested" in out
    for spelled in (WEIRD, json.dumps(WEIRD)[1:-1], repr(WEIRD)[1:-1], "Grüße", "Gr\\u00fc"):
        assert spelled not in out, spelled


async def test_tool_call_arguments_are_scrubbed_in_any_spelling(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODEL_KEY", "sk-test")
    config = ECHO.replace("[llm]", f'[llm]\nbase_url = "{fake_openai.base_url}"\nmax_retries = 0')
    config += '[[agents]]\nname = "bot"\nkind = "llm"\nmodel = "m"\ntools = ["remember"]\n'
    fake_openai.script = [call("remember", text=f"keep {WEIRD}"), say("kept")]
    async with deck_with_chat(make_config(config)) as (deck, chat):
        await deck.vault.set("WEIRD", WEIRD, by="test")
        await chat.say("@bot remember it")
        await chat.wait_for("bot: kept")
        rows = await stored(deck)
    assert "[redacted:WEIRD]" in rows["tool calls"]
    assert WEIRD not in rows["tool calls"]


async def test_a_long_message_is_cut_for_the_audit_after_scrubbing(
    deck_with_chat: DeckFactory,
) -> None:
    value = "cutpoint-secret-value-7d1e"
    async with deck_with_chat(make_config(AUDITED)) as (deck, chat):
        await deck.vault.set("CUT", value, by="test")
        # The value straddles character 500 of the command's arguments and of the text.
        await chat.say(f"/ask echo {'x' * 485}{value}")
        await chat.wait_for("echo:")
        rows = await stored(deck)
    assert "cutpoint" not in rows["audit"]
