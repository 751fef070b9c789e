"""Agents ask each other (`ask_agent`): the chain in chat, the hop limit, cycles, approvals."""

from __future__ import annotations

import pytest

from roster.toolkit.delegation import refusal
from tests.fakes.chat import ChatRecorder
from tests.fakes.openai_server import FakeOpenAI, call, say
from tests.support.config import make_config
from tests.support.decks import DeckFactory
from tests.support.llm import tool_results


def llm(name: str, tools: str = '["ask_agent"]', extra: str = "") -> str:
    return f"""
[[agents]]
name = "{name}"
kind = "llm"
model = "{name}-model"
description = "Agent {name}"
tools = {tools}
{extra}"""


def config(server: FakeOpenAI, *agents: str, max_hops: int = 5) -> str:
    return f"""
[deck]
default_agent = "a"
max_hops = {max_hops}
[llm]
base_url = "{server.base_url}"
api_key = "env:TEST_OPENAI_KEY"
timeout = 5
max_retries = 0
[[users]]
id = "test:admin"
role = "admin"
[[agents]]
name = "host"
kind = "command"
description = "Host checks"
command = ["echo", "host says: {{input}}"]
[[agents]]
name = "shell"
kind = "command"
description = "Runs a shell line, after approval"
command = ["echo", "shell ran: {{input}}"]
approval = "always"
{"".join(agents)}
"""


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")


def test_refusal_counts_hops_and_spots_cycles() -> None:
    assert refusal(("a",), "b", max_hops=1) is None
    assert "hop limit of 1" in (refusal(("a", "b"), "c", max_hops=1) or "")
    assert "a → b → a would be a cycle" in (refusal(("a", "b"), "a", max_hops=5) or "")


async def test_an_agent_asks_another_and_uses_its_answer(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.by_model["a-model"] = [
        call("ask_agent", agent="host", text="disk"),
        say("the host is fine"),
    ]
    async with deck_with_chat(make_config(config(fake_openai, llm("a")))) as (_deck, chat):
        await chat.say("@a is the host fine?")
        await chat.wait_for("a → host: disk")
        await chat.wait_for("host says: disk")
        await chat.wait_for("a: the host is fine")
    assert tool_results(fake_openai, "a-model") == ["host says: disk\n"]


async def test_the_chat_shows_the_chain_from_the_router(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    router = llm("router", tools="[]", extra="router = true")
    fake_openai.by_model["router-model"] = [call("route", agent="a", reason="research")]
    fake_openai.by_model["a-model"] = [call("ask_agent", agent="host", text="uptime"), say("ok")]
    async with deck_with_chat(make_config(config(fake_openai, router, llm("a")))) as (_d, chat):
        await chat.say("find out the uptime")
        needles = ("router → a:", "router → a → host:", "a: ok")
        shown = [(await chat.wait_for(needle)).text for needle in needles]
        assert shown == ["router → a: research", "router → a → host: uptime", "a: ok"]


async def test_the_hop_limit_stops_a_long_chain(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.by_model.update(
        {
            "a-model": [call("ask_agent", agent="b", text="go on"), say("a done")],
            "b-model": [call("ask_agent", agent="c", text="go on"), say("b done")],
            "c-model": [call("ask_agent", agent="d", text="go on"), say("c gave up")],
            "d-model": [say("d should never run")],
        }
    )
    agents = (llm("a"), llm("b"), llm("c"), llm("d"))
    async with deck_with_chat(make_config(config(fake_openai, *agents, max_hops=2))) as (_d, chat):
        await chat.say("@a start")
        await chat.wait_for("a: a done")
    assert tool_results(fake_openai, "c-model") == [
        "refused: a → b → c → d is more than the hop limit of 2 delegations"
    ]
    assert tool_results(fake_openai, "a-model") == ["b done"]
    assert "d-model" not in {r["model"] for r in fake_openai.requests}


async def test_a_cycle_is_refused(deck_with_chat: DeckFactory, fake_openai: FakeOpenAI) -> None:
    fake_openai.by_model.update(
        {
            "a-model": [call("ask_agent", agent="b", text="ask me back"), say("a done")],
            "b-model": [call("ask_agent", agent="A", text="loop"), say("b stopped")],
        }
    )
    async with deck_with_chat(make_config(config(fake_openai, llm("a"), llm("b")))) as (_d, chat):
        await chat.say("@a start")
        await chat.wait_for("a: a done")
    assert tool_results(fake_openai, "b-model") == [
        "refused: a → b → a would be a cycle (a is already in this request)"
    ]
    assert len([r for r in fake_openai.requests if r["model"] == "a-model"]) == 2


async def test_a_delegated_agent_that_needs_approval_goes_through_approvals(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.by_model["a-model"] = [
        call("ask_agent", agent="shell", text="restart nginx"),
        say("shell is waiting for your approval"),
    ]
    async with deck_with_chat(make_config(config(fake_openai, llm("a")))) as (_deck, chat):
        await chat.say("@a restart nginx")
        card = await chat.wait_for("Approval needed")
        await chat.wait_for("a: shell is waiting for your approval")
        assert not any("exit 0" in text for text in chat.texts())  # nothing ran yet
        approval_id = card.text.split("(")[1].split(")")[0]
        await chat.press(f"{approval_id}:approve")
        await chat.wait_for("exit 0")
    answer = tool_results(fake_openai, "a-model")[0]
    assert answer.startswith(f"needs approval: card {approval_id} is in the chat")


async def test_an_unknown_agent_is_an_error_for_the_model(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.by_model["a-model"] = [call("ask_agent", agent="ghost", text="boo"), say("no")]
    async with deck_with_chat(make_config(config(fake_openai, llm("a")))) as (_deck, chat):
        await chat.say("@a ask ghost")
        await chat.wait_for("a: no")
    assert tool_results(fake_openai, "a-model")[0].startswith("error: No agent named 'ghost'")


NOTIFY_NEEDS_APPROVAL = {"notify": {"approval": "always"}}


async def card_id(chat: ChatRecorder) -> str:
    card = await chat.wait_for("Approval needed")
    return card.text.split("(")[1].split(")")[0]


async def test_a_cycle_is_refused_after_an_approval_and_a_restart(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.by_model.update(
        {
            "a-model": [call("ask_agent", agent="b", text="ask me back"), say("a waits")],
            "b-model": [
                call("notify", chat="test:other", text="about to ask a"),
                call("ask_agent", agent="a", text="loop"),
                say("b stopped"),
            ],
        }
    )
    text = config(fake_openai, llm("a"), llm("b", tools='["ask_agent", "notify"]'))
    cfg = make_config(text, tool_policy=NOTIFY_NEEDS_APPROVAL)
    async with deck_with_chat(cfg) as (_deck, chat):
        await chat.say("@a start")
        approval_id = await card_id(chat)
        await chat.wait_for("a: a waits")
    async with deck_with_chat(cfg) as (_deck, chat):  # the chain must come from the database
        await chat.press(f"{approval_id}:approve")
        await chat.wait_for("b: b stopped")
    assert tool_results(fake_openai, "b-model")[-1] == (
        "refused: a → b → a would be a cycle (a is already in this request)"
    )
    assert len([r for r in fake_openai.requests if r["model"] == "a-model"]) == 2


async def test_the_hop_limit_holds_after_an_approval(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.by_model.update(
        {
            "a-model": [call("ask_agent", agent="b", text="go on"), say("a waits")],
            "b-model": [
                call("notify", chat="test:other", text="going on"),
                call("ask_agent", agent="c", text="go on"),
                say("b gave up"),
            ],
            "c-model": [say("c should never run")],
        }
    )
    agents = (llm("a"), llm("b", tools='["ask_agent", "notify"]'), llm("c"))
    cfg = make_config(config(fake_openai, *agents, max_hops=1), tool_policy=NOTIFY_NEEDS_APPROVAL)
    async with deck_with_chat(cfg) as (_deck, chat):
        await chat.say("@a start")
        await chat.press(f"{await card_id(chat)}:approve")
        await chat.wait_for("b: b gave up")
    assert tool_results(fake_openai, "b-model")[-1] == (
        "refused: a → b → c is more than the hop limit of 1 delegations"
    )
    assert "c-model" not in {r["model"] for r in fake_openai.requests}
