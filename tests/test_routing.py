"""Free text reaches the right agent: binding, router model, local guess, "which agent?"."""

from __future__ import annotations

import pytest
from sqlmodel import select

from bot.intake.routing import ROUTE_ACTION
from roster.agent import Usage
from roster.model_client import Reply, ToolRequest
from roster.router import Answer, Candidate, HandOff, Junk, Unsure, guess, read_reply
from storage.models import AuditEvent, Run
from tests.fakes.openai_server import FakeOpenAI, call, say
from tests.support.config import make_config
from tests.support.decks import DeckFactory

HOST = Candidate("host", "Host checks: disk usage, memory, uptime", ("df", "disk"))
RESEARCHER = Candidate("researcher", "Researches questions on the web and summarises sources")
NOTES = Candidate("notes", "Keeps notes and reminders for the operator")


def routing_config(server: FakeOpenAI, *, router: bool = True, extra: str = "") -> str:
    router_agent = (
        """
[[agents]]
name = "router"
kind = "llm"
model = "router-model"
router = true
description = "Routes messages"
"""
        if router
        else ""
    )
    return f"""
[llm]
base_url = "{server.base_url}"
api_key = "env:TEST_OPENAI_KEY"
timeout = 5
max_retries = 0
[[users]]
id = "test:admin"
role = "admin"
{router_agent}
[[agents]]
name = "host"
kind = "command"
description = "Host checks: disk usage, memory, uptime"
keywords = ["df", "disk"]
command = ["echo", "host says: {{input}}"]
[[agents]]
name = "researcher"
kind = "llm"
model = "researcher-model"
description = "Researches questions on the web and summarises sources"
[[agents]]
name = "notes"
kind = "llm"
model = "notes-model"
description = "Keeps notes and reminders for the operator"
{extra}
"""


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")


# --- the local guess, pure ------------------------------------------------------------


def test_guess_picks_by_keyword_and_says_why() -> None:
    picked = guess("how full is the disk on web-1?", [HOST, RESEARCHER, NOTES])
    assert picked.agent == "host"
    assert "disk" in picked.matched


def test_guess_picks_a_named_agent() -> None:
    assert guess("researcher: what changed in python 3.13", [HOST, RESEARCHER]).agent == (
        "researcher"
    )


def test_guess_is_unsure_between_close_matches() -> None:
    picked = guess("questions about reminders", [HOST, RESEARCHER, NOTES])
    assert picked.agent is None
    assert set(picked.candidates) == {"researcher", "notes"}


def test_guess_without_any_match_has_no_candidates() -> None:
    assert guess("hello there", [HOST, RESEARCHER]) == guess("", [HOST, RESEARCHER])
    assert guess("hello there", [HOST, RESEARCHER]).candidates == ()


def test_guess_with_one_agent_takes_it() -> None:
    assert guess("anything at all", [NOTES]).agent == "notes"


# --- reading the router's answer strictly -----------------------------------------------


def reply(content: str = "", name: str = "", arguments: str = "") -> Reply:
    calls = (ToolRequest("c1", name, arguments),) if name else ()
    return Reply(content, calls, Usage(3, 2, 0.5))


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (reply(name="route", arguments='{"agent": "Host", "reason": "disk"}'), HandOff),
        (reply("I am a deck of agents."), Answer),
        (reply(name="ask_which", arguments='{"agents": ["host", "nobody", "notes"]}'), Unsure),
        (reply(name="route", arguments='{"agent": "nobody"}'), Junk),
        (reply(name="route", arguments="{not json"), Junk),
        (reply(name="route", arguments='["host"]'), Junk),
        (reply(name="ask_which", arguments='{"agents": "host"}'), Junk),
        (reply(name="delete_everything", arguments="{}"), Junk),
        (reply("   "), Junk),
    ],
)
def test_router_answers_are_read_strictly(answer: Reply, expected: type) -> None:
    decision = read_reply(answer, {"host", "notes"})
    assert isinstance(decision, expected)
    assert decision.usage == Usage(3, 2, 0.5)  # spent even when unusable
    if isinstance(decision, Unsure):
        assert decision.candidates == ("host", "notes")


# --- end to end -------------------------------------------------------------------------


async def test_router_hands_the_message_on(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.by_model["router-model"] = [call("route", agent="host", reason="a disk question")]
    async with deck_with_chat(make_config(routing_config(fake_openai))) as (deck, chat):
        await chat.say("how full is it")
        await chat.wait_for("router → host: a disk question")
        await chat.wait_for("host says: how full is it")
        await deck.runner.flush()
        async with deck.db.session() as session:
            runs = {r.agent: r for r in (await session.exec(select(Run))).all()}
    request = fake_openai.requests[0]
    assert request["model"] == "router-model"
    assert "- researcher: Researches questions" in request["messages"][0]["content"]
    assert "- router" not in request["messages"][0]["content"]  # it does not route to itself
    assert {t["function"]["name"] for t in request["tools"]} == {"route", "ask_which"}
    assert (runs["router"].tokens_in, runs["router"].tokens_out) == (11, 7)
    assert runs["host"].output.strip() == "host says: how full is it"


async def test_router_answers_itself(deck_with_chat: DeckFactory, fake_openai: FakeOpenAI) -> None:
    fake_openai.by_model["router-model"] = [say("I route your messages to three agents.")]
    async with deck_with_chat(make_config(routing_config(fake_openai))) as (_deck, chat):
        await chat.say("what are you?")
        await chat.wait_for("router: I route your messages to three agents.")
    assert len(fake_openai.requests) == 1


async def test_junk_from_the_router_falls_back_to_the_local_guess(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.by_model["router-model"] = [call("route", agent="nobody")]
    async with deck_with_chat(make_config(routing_config(fake_openai))) as (deck, chat):
        await chat.say("check the disk")
        await chat.wait_for("→ host (matched")
        await chat.wait_for("host says: check the disk")
        await deck.runner.flush()
        async with deck.db.session() as session:
            actions = [e.action for e in (await session.exec(select(AuditEvent))).all()]
    assert "router.junk" in actions


async def test_router_failure_falls_back_to_the_local_guess(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    from tests.fakes.openai_server import fail

    fake_openai.by_model["router-model"] = [fail(500)]
    async with deck_with_chat(make_config(routing_config(fake_openai))) as (_deck, chat):
        await chat.say("df please")
        reply = await chat.wait_for("df please")
        assert reply.text.startswith("host\nhost says: df please"), reply.text  # the local guess


async def test_without_a_model_the_local_guess_picks_and_says_so(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_OPENAI_KEY")  # the router (and the llm agents) are unavailable
    backup = '[[agents]]\nname = "backup"\nkind = "command"\ndescription = "Backs up files"\n'
    backup += 'command = ["echo", "backup"]'
    config = make_config(routing_config(fake_openai, extra=backup))
    async with deck_with_chat(config) as (_deck, chat):
        await chat.say("how is the disk usage")
        notice = await chat.wait_for("→ host")
        await chat.wait_for("host says: how is the disk usage")
    assert "matched" in notice.text
    assert fake_openai.requests == []


async def test_not_sure_asks_which_agent_with_buttons(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    config = make_config(routing_config(fake_openai, router=False))
    async with deck_with_chat(config) as (_deck, chat):
        await chat.say("questions about my reminders")
        question = await chat.wait_for("Which agent should answer?")
        buttons = {b.label: b for b in question.message.buttons}
        assert set(buttons) == {"researcher", "notes"}
        assert {b.action_id for b in buttons.values()} == {ROUTE_ACTION}
        await chat.press(buttons["notes"].value, action_id=ROUTE_ACTION, chat="test:other")
        await chat.press("feedbeef:notes", action_id=ROUTE_ACTION)
        await chat.press(buttons["notes"].value, action_id=ROUTE_ACTION)
        await chat.wait_for("notes: echo: questions about my reminders")
        await chat.press(buttons["researcher"].value, action_id=ROUTE_ACTION)  # taken already
    refusals = [text for text, alert in chat.press_answers if alert]
    assert len(refusals) == 3
    assert all("no longer open" in text for text in refusals)
    assert ("→ notes", False) in chat.press_answers
    assert [r["model"] for r in fake_openai.requests] == ["notes-model"]


async def test_the_chats_bound_agent_comes_first(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    bound = '[[bindings]]\nchat = "test:chat"\nagent = "researcher"'
    async with deck_with_chat(make_config(routing_config(fake_openai, extra=bound))) as (_d, chat):
        await chat.say("check the disk")
        await chat.wait_for("researcher: echo: check the disk")
    assert [r["model"] for r in fake_openai.requests] == ["researcher-model"]


async def test_a_viewer_costs_no_router_call(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    viewer = '[[users]]\nid = "test:viewer"\nrole = "viewer"'
    async with deck_with_chat(make_config(routing_config(fake_openai, extra=viewer))) as (_d, chat):
        await chat.say("check the disk", user="test:viewer")
        await chat.wait_for("You need the operator role")
    assert fake_openai.requests == []
