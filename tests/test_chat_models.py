"""/model through the fake Telegram: a model per chat, stored, allowed choices only, by role.

The real Telegram transport talks to the fake Bot API; the llm agent to the fake OpenAI
server, whose requests show which model each run asked.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from sqlmodel import select

from bot.app import open_deck
from bot.config import Config
from bot.deck import Deck
from storage.models import AuditEvent
from tests.fakes.openai_server import FakeOpenAI, say
from tests.fakes.telegram_server import FakeTelegram
from tests.support.config import make_config
from tests.support.decks import DeckFactory
from tests.support.runs import finished_runs

ADMIN = 1001
OPERATOR = 1002
VIEWER = 1003


def config_for(tg: FakeTelegram, ai: FakeOpenAI, models: str = '["gpt-4o"]') -> Config:
    return make_config(f"""
[deck]
default_agent = "bot"
[telegram]
token = "env:TG_TOKEN"
base_url = "{tg.base_url}"
[llm]
base_url = "{ai.base_url}"
api_key = "env:TEST_OPENAI_KEY"
max_retries = 0
[[users]]
id = "telegram:{ADMIN}"
role = "admin"
[[users]]
id = "telegram:{OPERATOR}"
role = "operator"
[[users]]
id = "telegram:{VIEWER}"
role = "viewer"
[[agents]]
name = "bot"
kind = "llm"
model = "gpt-4o-mini"
models = {models}
[[agents]]
name = "echo"
kind = "echo"
[prices."gpt-4o-mini"]
input = 1_000_000
[prices."gpt-4o"]
input = 10_000_000
""")


@pytest.fixture
async def tg(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeTelegram]:
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")
    server = await FakeTelegram().start()
    monkeypatch.setenv("TG_TOKEN", server.token)
    yield server
    await server.stop()


@contextlib.asynccontextmanager
async def running(config: Config) -> AsyncIterator[Deck]:
    async with asyncio.timeout(30), open_deck(config) as (deck, _):
        yield deck


async def said(tg: FakeTelegram, user: int, text: str, expect: str) -> str:
    """Send `text` as `user` in their private chat; the first new message holding `expect`."""
    before = len(tg.sent_texts(user))
    tg.user_says(text, user=user)

    def arrived() -> bool:
        return any(expect in t for t in tg.sent_texts(user)[before:])

    await tg.wait_until(arrived)
    return next(t for t in tg.sent_texts(user)[before:] if expect in t)


async def audited(deck: Deck) -> list[tuple[str, str]]:
    await deck.runner.flush()
    async with deck.db.session() as session:
        events = (await session.exec(select(AuditEvent))).all()
    return [(e.actor, e.action) for e in events]


async def test_a_chat_switches_its_model_and_keeps_it_across_a_restart(
    tg: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    config = config_for(tg, fake_openai)
    async with running(config) as deck:
        shown = await said(tg, OPERATOR, "/model", "Models in this chat")
        assert "bot: gpt-4o-mini · choices: gpt-4o-mini, gpt-4o" in shown
        assert "echo" not in shown  # not a model agent
        await said(tg, OPERATOR, "/model bot gpt-4o", "bot now uses gpt-4o in this chat.")
        fake_openai.script = [say("big answer"), say("small answer")]
        await said(tg, OPERATOR, "hello", "bot: big answer")
        await said(tg, ADMIN, "hello", "bot: small answer")  # another chat: its own model
        assert [r["model"] for r in fake_openai.requests] == ["gpt-4o", "gpt-4o-mini"]
        runs = await finished_runs(deck, 2)
        # Priced by the model each run used: 11 prompt tokens at 10 or 1 per token.
        assert [r.cost for r in runs] == [pytest.approx(110.0), pytest.approx(11.0)]
        assert ("telegram:1002", "model.switched") in await audited(deck)

    async with running(config) as deck:  # the switch is stored: it holds after a restart
        shown = await said(tg, OPERATOR, "/model bot", "Models in this chat")
        assert "bot: gpt-4o (switched here)" in shown
        await said(tg, OPERATOR, "again", "bot: echo: again")
        assert fake_openai.requests[-1]["model"] == "gpt-4o"
        await said(tg, OPERATOR, "/model bot default", "bot uses its own model again: gpt-4o-mini")
        await said(tg, OPERATOR, "once more", "bot: echo: once more")
        assert fake_openai.requests[-1]["model"] == "gpt-4o-mini"
        assert ("telegram:1002", "model.reset") in await audited(deck)


async def test_a_model_not_listed_is_refused_and_audited(
    tg: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    async with running(config_for(tg, fake_openai)) as deck:
        refused = await said(tg, OPERATOR, "/model bot gpt-5-pro", "is not a choice")
        assert refused == "gpt-5-pro is not a choice for bot. Choices: gpt-4o-mini, gpt-4o."
        await said(tg, OPERATOR, "/model echo gpt-4o", "echo is not a model agent")
        await said(tg, OPERATOR, "/model nobody gpt-4o", "No agent named 'nobody'")
        await said(tg, OPERATOR, "hi", "bot: echo: hi")
        assert ("telegram:1002", "model.refused") in await audited(deck)
    assert fake_openai.requests[-1]["model"] == "gpt-4o-mini"


async def test_a_viewer_may_look_but_not_switch(tg: FakeTelegram, fake_openai: FakeOpenAI) -> None:
    async with running(config_for(tg, fake_openai)) as deck:
        await said(tg, VIEWER, "/model", "bot: gpt-4o-mini")
        await said(tg, VIEWER, "/model bot gpt-4o", "operator")
        events = await audited(deck)
        assert ("telegram:1003", "refused.role") in events
        assert ("telegram:1003", "model.switched") not in events
        assert await deck.chat_models.of_chat(f"telegram:{VIEWER}") == {}


async def test_a_stored_choice_the_config_no_longer_allows_is_ignored(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A choice is checked again at each run: narrowing `models` takes it back."""
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")
    text = f"""
[deck]
default_agent = "bot"
[llm]
base_url = "{fake_openai.base_url}"
api_key = "env:TEST_OPENAI_KEY"
max_retries = 0
[[users]]
id = "test:admin"
role = "admin"
[[agents]]
name = "bot"
kind = "llm"
model = "gpt-4o-mini"
"""
    async with deck_with_chat(make_config(text + 'models = ["gpt-4o"]')) as (_deck, chat):
        await chat.say("/model bot gpt-4o")
        await chat.wait_for("bot now uses gpt-4o in this chat.")
    async with deck_with_chat(make_config(text)) as (_deck, chat):
        await chat.say("/model")
        await chat.wait_for("bot: gpt-4o-mini · choices: gpt-4o-mini")
        await chat.say("hi")
        await chat.wait_for("bot: echo: hi")
    assert fake_openai.requests[-1]["model"] == "gpt-4o-mini"
