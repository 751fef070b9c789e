"""Agent memory through the fake OpenAI server: window, running summary, notes, sharing."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from storage.models import Message
from tests.fakes.openai_server import FakeOpenAI, call, fail, say
from tests.support.config import make_config
from tests.support.decks import DeckFactory


def config_text(server: FakeOpenAI, *, memory: str = "agent") -> str:
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
instructions = "Be brief."
tools = ["remember", "recall"]
memory_turns = 2
memory = "{memory}"
[[agents]]
name = "mate"
kind = "llm"
model = "m"
tools = ["remember", "recall"]
memory = "{memory}"
"""


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")


def contents(request: dict[str, object]) -> list[tuple[str, str]]:
    messages = request["messages"]
    assert isinstance(messages, list)
    return [(m["role"], m["content"]) for m in messages]


async def test_window_overflow_is_summarised_and_the_prompt_stays_bounded(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    # memory_turns = 2: the window may grow to 3 exchanges, then all but 2 are folded.
    fake_openai.script = [say("a1"), say("a2"), say("a3"), say("a4"), say("SUMMARY-1"), say("a5")]
    async with deck_with_chat(make_config(config_text(fake_openai))) as (deck, chat):
        for n in range(1, 6):
            await chat.say(f"m{n}")
            await chat.wait_for(f"bot: a{n}")
        await deck.runner.flush()
        async with deck.db.session() as session:
            rows = (await session.exec(select(Message).order_by(col(Message.id)))).all()
    requests = fake_openai.requests
    assert contents(requests[3])[1:] == [
        ("user", "m1"),
        ("assistant", "a1"),
        ("user", "m2"),
        ("assistant", "a2"),
        ("user", "m3"),
        ("assistant", "a3"),
        ("user", "m4"),
    ]  # three exchanges: not folded yet
    summary_prompt = contents(requests[4])
    assert "keep the memory of a conversation" in summary_prompt[0][1]
    assert "user: m1\nassistant: a1\nuser: m2\nassistant: a2" in summary_prompt[1][1]
    assert "m3" not in summary_prompt[1][1]  # the window is kept word for word
    assert contents(requests[5]) == [
        ("system", "Be brief."),
        ("system", "Summary of the earlier conversation:\nSUMMARY-1"),
        ("user", "m3"),
        ("assistant", "a3"),
        ("user", "m4"),
        ("assistant", "a4"),
        ("user", "m5"),
    ]
    # The fold is queued behind the turns it saw; later turns may share its batch, so the
    # summary's place among the rows is not fixed: there is one, and the rest are turns.
    assert [r.content for r in rows if r.role == "summary"] == ["SUMMARY-1"]
    assert [(r.role, r.content) for r in rows if r.role != "summary"] == [
        ("user", "m3"),
        ("assistant", "a3"),
        ("user", "m4"),
        ("assistant", "a4"),
        ("user", "m5"),
        ("assistant", "a5"),
    ]


async def test_the_summary_is_folded_again_and_forget_clears_it(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [say("a1"), say("a2"), say("a3"), say("a4"), say("S1")]
    fake_openai.script += [say("a5"), say("a6"), say("S2"), say("a7")]
    async with deck_with_chat(make_config(config_text(fake_openai))) as (_deck, chat):
        for n in range(1, 7):
            await chat.say(f"m{n}")
            await chat.wait_for(f"bot: a{n}")
        await chat.say("/forget bot")
        await chat.wait_for("Forgot 5 message(s) with bot.")
        await chat.say("m7")
        await chat.wait_for("bot: a7")
    second_summary = contents(fake_openai.requests[7])[1][1]
    assert second_summary.startswith("Summary so far:\nS1\n")
    assert "user: m3\nassistant: a3\nuser: m4\nassistant: a4" in second_summary
    assert contents(fake_openai.requests[8]) == [("system", "Be brief."), ("user", "m7")]


async def test_a_failed_summary_keeps_the_turns(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [say("a1"), say("a2"), say("a3"), say("a4"), fail(500), say("a5")]
    async with deck_with_chat(make_config(config_text(fake_openai))) as (_deck, chat):
        for n in range(1, 6):
            await chat.say(f"m{n}")
            await chat.wait_for(f"bot: a{n}")
    last = contents(fake_openai.requests[5])
    assert ("user", "m2") in last  # nothing was lost; the fold is tried again later
    assert all(role != "system" or text == "Be brief." for role, text in last)


async def test_notes_survive_a_restart_and_can_be_listed_and_forgotten(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    config = make_config(config_text(fake_openai))
    fake_openai.script = [call("remember", text="the db host is pg-7"), say("noted")]
    fake_openai.script += [call("remember", text="the db port is 5433"), say("noted too")]
    async with deck_with_chat(config) as (_deck, chat):
        await chat.say("remember the db host")
        await chat.wait_for("bot: noted")
        await chat.say("and the port")
        await chat.wait_for("bot: noted too")
    fake_openai.script = [call("recall", keyword="DB host"), say("pg-7")]
    async with deck_with_chat(config) as (_deck, chat):  # a new process on the same data
        await chat.say("where is the db?")
        await chat.wait_for("bot: pg-7")
        await chat.say("/memory bot")
        listing = await chat.wait_for("Notes of bot")
        await chat.say("/forget notes bot")
        await chat.wait_for("Forgot 2 note(s) with bot.")
        fake_openai.script = [call("recall", keyword="db"), say("gone")]
        await chat.say("where is the db now?")
        await chat.wait_for("bot: gone")
    results = [
        m["content"] for r in fake_openai.requests for m in r["messages"] if m["role"] == "tool"
    ]
    assert "- the db host is pg-7" in results  # keyword words match in any case
    assert "no notes" in results
    assert listing.text.index("the db port is 5433") < listing.text.index("the db host is pg-7")


async def test_chat_memory_is_shared_by_the_agents_that_ask_for_it(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [call("remember", text="deploys happen on friday"), say("ok")]
    fake_openai.script += [call("recall", keyword="deploys"), say("friday")]
    config = make_config(config_text(fake_openai, memory="chat"))
    async with deck_with_chat(config) as (_deck, chat):
        await chat.say("@bot when do we deploy? friday")
        await chat.wait_for("bot: ok")
        await chat.say("@mate when do we deploy?")
        await chat.wait_for("mate: friday")
        await chat.say("/memory")
        listing = await chat.wait_for("Notes")
    mate_request = contents(fake_openai.requests[2])
    assert ("user", "when do we deploy? friday") in mate_request
    assert ("assistant", "[bot] ok") in mate_request  # shared history says who answered
    tool_results = [
        m["content"] for m in fake_openai.requests[3]["messages"] if m["role"] == "tool"
    ]
    assert tool_results == ["- deploys happen on friday"]
    assert "shared · deploys happen on friday" in listing.text
