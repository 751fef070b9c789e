"""Secrets in a running deck: /secret from chat, references, the allowlist, redaction."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from bot.cli import _setup_logging
from bot.errors import ConfigError
from storage.models import AuditEvent, Message, Run
from tests.fakes.openai_server import FakeOpenAI, call, say
from tests.support.config import make_config
from tests.support.decks import DeckFactory

VALUE = "hunter2-Value-5d41402abc"
BASE = """
[deck]
default_agent = "printer"
[[users]]
id = "test:admin"
role = "admin"
[[users]]
id = "test:op"
role = "operator"
[[agents]]
name = "printer"
kind = "command"
command = ["/bin/sh", "-c", "echo token=$TOKEN"]
env = { TOKEN = "secret:TOKEN" }
secrets = ["TOKEN"]
"""


def llm_config(server: FakeOpenAI) -> str:
    return f"""
[deck]
default_agent = "allowed"
[llm]
base_url = "{server.base_url}"
api_key = "secret:OPENAI_KEY"
max_retries = 0
[[users]]
id = "test:admin"
role = "admin"
[[agents]]
name = "allowed"
kind = "llm"
model = "m"
tools = ["run_command"]
secrets = ["TOKEN"]
[[agents]]
name = "other"
kind = "llm"
model = "m"
tools = ["run_command"]
"""


async def audit_text(deck) -> str:  # type: ignore[no-untyped-def]
    await deck.runner.flush()
    async with deck.db.session() as session:
        rows = (await session.exec(select(AuditEvent))).all()
    return json.dumps([[r.action, r.subject, r.detail] for r in rows])


async def test_set_in_private_chat_deletes_the_message_and_stores_no_plaintext(
    deck_with_chat: DeckFactory, data_dir: Path
) -> None:
    async with deck_with_chat(make_config(BASE)) as (deck, chat):
        await chat.say(f"/secret set TOKEN {VALUE}", message_id="41")
        await chat.wait_for("Stored TOKEN")
        assert [ref.message_id for ref in chat.deleted] == ["41"]
        assert "I deleted your message." in chat.texts()[-1]
        await chat.say("/ask printer go")
        await chat.wait_for("token=[redacted:TOKEN]")
        await chat.say("/secrets")
        listing = await chat.wait_for("TOKEN set by test:admin")
        audit = await audit_text(deck)
        async with deck.db.session() as session:
            outputs = [run.output for run in (await session.exec(select(Run))).all()]
            turns = [m.content for m in (await session.exec(select(Message))).all()]
    assert VALUE not in listing.text
    assert VALUE not in audit
    assert '"secret.set", "TOKEN"' in audit
    assert outputs == ["token=[redacted:TOKEN]\n"]
    assert "token=[redacted:TOKEN]\n" in turns
    assert all(VALUE not in text for text in chat.texts())
    for path in data_dir.glob("agentdeck.db*"):
        assert VALUE.encode() not in path.read_bytes()


async def test_set_outside_a_private_chat_is_refused_and_deleted(
    deck_with_chat: DeckFactory,
) -> None:
    async with deck_with_chat(make_config(BASE)) as (deck, chat):
        await chat.say(f"/secret set TOKEN {VALUE}", private=False, message_id="7")
        reply = await chat.wait_for("only in a private chat")
        assert deck.vault.get("TOKEN") is None
        audit = await audit_text(deck)
    assert [ref.message_id for ref in chat.deleted] == ["7"]
    assert "treat it as leaked" in reply.text
    assert VALUE not in audit  # the command's arguments are not recorded
    assert "not a private chat" in audit


async def test_only_admins_set_secrets_and_a_console_cannot_delete(
    deck_with_chat: DeckFactory,
) -> None:
    async with deck_with_chat(make_config(BASE)) as (deck, chat):
        await chat.say(f"/secret set TOKEN {VALUE}", user="test:op")
        await chat.wait_for("You need the admin role")
        await chat.say(f"/secret set TOKEN {VALUE}")  # no message id: nothing to delete
        reply = await chat.wait_for("Stored TOKEN")
        assert deck.vault.get("TOKEN") == VALUE
        await chat.say("/secret set X ab")
        await chat.wait_for("shorter than 4 characters")
        await chat.say("/secret delete TOKEN")
        await chat.wait_for("Deleted TOKEN")
        await chat.say("/ask printer go")
        failed = await chat.wait_for("No secret named 'TOKEN'")
    assert "remove it yourself" in reply.text
    assert "agentdeck secrets set TOKEN" in failed.text


def test_an_env_secret_missing_from_the_allowlist_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"env.TOKEN uses secret:TOKEN, which is not in"):
        make_config(BASE.replace('secrets = ["TOKEN"]', ""))


async def test_llm_key_and_tool_arguments_resolve_and_the_model_never_sees_a_value(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    argv = ["/bin/echo", "secret:TOKEN"]
    fake_openai.script = [call("run_command", argv=argv), say("printed it")]
    config = make_config(llm_config(fake_openai))
    async with deck_with_chat(config) as (deck, chat):
        await deck.vault.set("TOKEN", VALUE, by="test")
        await deck.vault.set("OPENAI_KEY", "sk-from-the-vault", by="test")
    async with deck_with_chat(config) as (deck, chat):  # the llm key is read at start
        await chat.say(f"run it, and by the way the token is {VALUE}")
        card = await chat.wait_for("Approval needed")
        assert "secret:TOKEN" in card.text  # approvers see the reference, not the value
        await chat.press(card.message.buttons[0].value)
        await chat.wait_for("allowed: printed it")
        fake_openai.script = [call("run_command", argv=argv), say("refused")]
        await chat.say("@other run it")
        card = await chat.wait_for("asks agent other")
        await chat.press(card.message.buttons[0].value)
        await chat.wait_for("other: refused")
    sent = json.dumps(fake_openai.requests)
    assert VALUE not in sent
    tool_results = [
        m["content"] for r in fake_openai.requests for m in r["messages"] if m["role"] == "tool"
    ]
    assert "exit code 0\n[redacted:TOKEN]\n" in tool_results
    assert (
        "error: Agent 'other' may not use secret 'TOKEN': add 'TOKEN' to the agent's "
        "`secrets` list in the config."
    ) in tool_results


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:], root.level = handlers, level


@pytest.mark.usefixtures("restore_logging")
async def test_log_lines_and_tracebacks_are_scrubbed(
    deck_with_chat: DeckFactory, data_dir: Path
) -> None:
    config = make_config(BASE)
    _setup_logging(config)
    async with deck_with_chat(config) as (deck, _chat):
        await deck.vault.set("TOKEN", VALUE, by="test")
        log = logging.getLogger("roster.command")
        log.warning("the agent printed %s", VALUE)
        try:
            raise RuntimeError(f"failed with {VALUE}")
        except RuntimeError:
            log.exception("a run failed")
    text = (data_dir / "agentdeck.log").read_text()
    assert "the agent printed [redacted:TOKEN]" in text
    assert "RuntimeError: failed with [redacted:TOKEN]" in text
    assert VALUE not in text


async def test_a_handled_update_keeps_no_text(data_dir: Path) -> None:
    """A `/secret set` typed on Telegram or Slack sits in the inbox until it is handled."""
    from storage.clock import FakeClock
    from storage.db import Database, sqlite_url
    from storage.inbox import Inbox
    from storage.models import InboxItem
    from storage.writer import WriteBehind

    payload = {"transport": "t", "chat": "t:1", "user": "t:1", "text": f"/secret set X {VALUE}"}
    async with Database(sqlite_url(data_dir)) as db, WriteBehind(db) as writer:
        inbox = Inbox(db=db, writer=writer, clock=FakeClock())
        assert await inbox.accept([("t:1", payload)]) == {"t:1"}
        inbox.mark_handled("t:1")
        await writer.flush()
        async with db.session() as session:
            row = await session.get(InboxItem, "t:1")
        assert await inbox.accept([("t:1", payload)]) == set()  # still deduplicated
    assert row is not None
    assert (row.payload, row.handled_at is not None) == ({}, True)


async def test_a_failed_job_escalates_through_the_outbox_without_the_value(
    deck_with_chat: DeckFactory, data_dir: Path
) -> None:
    from storage.models import OutboxMessage

    failing = BASE.replace("echo token=$TOKEN", "echo token=$TOKEN; exit 3")
    config = make_config(failing.replace("[deck]", '[deck]\nadmin_chat = "test:admins"'))
    async with deck_with_chat(config) as (deck, chat):
        await chat.say(f"/secret set TOKEN {VALUE}")
        await chat.wait_for("Stored TOKEN")
        await chat.say("/every 1h printer go")
        made = await chat.wait_for("/pause")
        job_id = made.text.split("/pause ")[1][:6]
        await chat.say(f"/run {job_id}")
        await chat.wait_for("failed (printer", chat="test:admins")
        await chat.say(f"/unschedule {job_id}")
        await chat.wait_for("removed")
        async with deck.db.session() as session:
            rows = (await session.exec(select(OutboxMessage))).all()
            stored = json.dumps([row.payload for row in rows])
    assert "token=[redacted:TOKEN]" in stored  # the escalation carries the output
    assert VALUE not in stored
