"""Models and money: the price table, the fallback model, cost per run, /cost."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from sqlmodel import select

from roster.pricing import Price, PriceTable
from storage.models import Run, RunState
from tests.fakes.openai_server import FakeOpenAI, fail, say
from tests.support.config import make_config
from tests.support.decks import DeckFactory

# The fake server reports 11 prompt and 7 completion tokens per call.


def cost_config(server: FakeOpenAI, fallback: str = "") -> str:
    return f"""
[deck]
default_agent = "bot"
[llm]
base_url = "{server.base_url}"
api_key = "env:TEST_OPENAI_KEY"
timeout = 5
max_retries = 0
[[users]]
id = "test:admin"
role = "admin"
[[agents]]
name = "bot"
kind = "llm"
model = "primary-2024-07-18"
{fallback}
[prices.primary]
input = 1_000_000
output = 2_000_000
[prices.backup]
input = 3_000_000
output = 0
"""


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")


def test_prices_per_million_tokens_with_the_longest_prefix() -> None:
    table = PriceTable(
        {"gpt-4o": Price(input=2.5, output=10), "gpt-4o-mini": Price(input=0.15, output=0.6)}
    )
    assert table.cost_of("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert table.cost_of("gpt-4o-mini-2024-07-18", 2000, 1000) == pytest.approx(0.0009)
    assert table.cost_of("gpt-4o-2024-08-06", 1000, 0) == pytest.approx(0.0025)
    assert table.cost_of("llama3", 5000, 5000) == 0.0


async def test_cost_is_recorded_per_run(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [say("hello")]
    async with deck_with_chat(make_config(cost_config(fake_openai))) as (deck, chat):
        await chat.say("hi")
        await chat.wait_for("bot: hello")
        await deck.runner.flush()
        async with deck.db.session() as session:
            run = (await session.exec(select(Run))).one()
        await chat.say("/runs")
        listing = await chat.wait_for("Recent runs")
    assert (run.tokens_in, run.tokens_out) == (11, 7)
    assert run.cost == pytest.approx(11 * 1.0 + 7 * 2.0)
    assert " bot done " in listing.text
    assert "11+7 tok · $25.0000 · hi" in listing.text


async def test_the_fallback_model_answers_when_the_primary_fails(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.by_model = {"primary-2024-07-18": [fail(503)], "backup": [say("from backup")]}
    config = make_config(cost_config(fake_openai, fallback='fallback_model = "backup"'))
    async with deck_with_chat(config) as (deck, chat):
        await chat.say("hi")
        await chat.wait_for("bot: from backup")
        await deck.runner.flush()
        async with deck.db.session() as session:
            run = (await session.exec(select(Run))).one()
    assert [r["model"] for r in fake_openai.requests] == ["primary-2024-07-18", "backup"]
    assert run.status == RunState.DONE
    assert run.cost == pytest.approx(11 * 3.0)  # priced as the model that answered


async def test_without_a_fallback_the_failure_is_reported(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.by_model = {"primary-2024-07-18": [fail(503)]}
    async with deck_with_chat(make_config(cost_config(fake_openai))) as (_deck, chat):
        await chat.say("hi")
        await chat.wait_for("bot: The model API answered 503")
    assert len(fake_openai.requests) == 1


async def test_cost_command_sums_per_agent_today_and_over_seven_days(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [say("one"), say("two")]
    async with deck_with_chat(make_config(cost_config(fake_openai))) as (deck, chat):
        for word in ("a", "b"):
            await chat.say(word)
        await chat.wait_for("bot: two")
        now = deck.clock.now()
        async with deck.db.session() as session:
            for agent, days, cost in (("reporter", 2, 0.5), ("reporter", 9, 100.0)):
                session.add(_old_run(agent, now - timedelta(days=days), cost))
            await session.commit()
        await chat.say("/cost")
        report = await chat.wait_for("Last 7 days")
        await chat.say("/cost nobody")
        await chat.wait_for("No runs in the last 7 days for nobody.")
    today, week = report.text.split("Last 7 days")
    assert "bot: $50.00 · 2 run(s) · 36 tok" in today
    assert "reporter" not in today
    assert "bot: $50.00" in week
    assert "reporter: $0.5000 · 1 run(s)" in week
    assert "total: $50.50" in week  # the run of 9 days ago is not counted


def _old_run(agent: str, when: datetime, cost: float) -> Run:
    return Run(
        id=uuid.uuid4().hex,
        agent=agent,
        chat_id="test:chat",
        user_id="test:admin",
        input="old",
        status=RunState.DONE,
        cost=cost,
        started_at=when,
        finished_at=when,
    )
