"""The llm agent against a fake OpenAI-compatible server: tool loop, limits, failures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
from sqlmodel import select

from roster.spec import ApprovalMode, Policy
from roster.tools import Tool, ToolCallContext
from storage.models import Run, RunState
from tests.fakes.openai_server import FakeOpenAI, Step, call, fail, say
from tests.support.config import make_config
from tests.support.decks import DeckFactory


def llm_config(
    server: FakeOpenAI, *, max_turns: int = 5, timeout: float = 5, extra: str = ""
) -> str:
    return f"""
[deck]
default_agent = "bot"
memory_turns = 2
[llm]
base_url = "{server.base_url}"
api_key = "env:TEST_OPENAI_KEY"
timeout = {timeout}
max_retries = 0
[[users]]
id = "test:admin"
role = "admin"
[[agents]]
name = "bot"
kind = "llm"
model = "fake-model"
instructions = "Be brief."
tools = ["remember", "recall", "run_command"]
max_turns = {max_turns}
{extra}
"""


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")


async def test_answer_with_instructions_and_usage(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [say("hello operator")]
    async with deck_with_chat(make_config(llm_config(fake_openai))) as (deck, chat):
        await chat.say("hi")
        await chat.wait_for("bot: hello operator")
        await deck.runner.flush()
        async with deck.db.session() as session:
            run = (await session.exec(select(Run))).one()
    request = fake_openai.requests[0]
    assert request["model"] == "fake-model"
    assert request["messages"][0] == {"role": "system", "content": "Be brief."}
    assert request["messages"][-1] == {"role": "user", "content": "hi"}
    assert {t["function"]["name"] for t in request["tools"]} == {
        "remember",
        "recall",
        "run_command",
    }
    assert (run.tokens_in, run.tokens_out, run.status) == (11, 7, RunState.DONE)


async def test_tool_loop_uses_tools_then_answers(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [
        call("remember", text="the disk is sda"),
        call("recall", keyword="disk"),
        say("done"),
    ]
    async with deck_with_chat(make_config(llm_config(fake_openai))) as (_deck, chat):
        await chat.say("note the disk")
        await chat.wait_for("bot: done")
    tool_results = [m for m in fake_openai.requests[2]["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in tool_results] == ["noted", "- the disk is sda"]


async def test_bad_tool_arguments_are_refused_before_running(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [call("remember", note="wrong key"), call("nonexistent"), say("ok")]
    async with deck_with_chat(make_config(llm_config(fake_openai))) as (deck, chat):
        await chat.say("go")
        await chat.wait_for("bot: ok")
        assert await deck.memory.notes("test:chat", "bot") == []
    results = [m["content"] for m in fake_openai.requests[2]["messages"] if m["role"] == "tool"]
    assert results == [
        "error: missing argument(s): text",
        "error: no tool named 'nonexistent'; available: remember, recall, run_command",
    ]


async def test_max_turns_stops_the_loop(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [call("recall"), call("recall"), call("recall")]
    async with deck_with_chat(make_config(llm_config(fake_openai, max_turns=2))) as (_deck, chat):
        await chat.say("loop forever")
        await chat.wait_for("Stopped after 2 model turns without a final answer")
    assert len(fake_openai.requests) == 2


async def test_server_error_becomes_a_clear_message(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [fail(500)]
    async with deck_with_chat(make_config(llm_config(fake_openai))) as (deck, chat):
        await chat.say("hi")
        posted = await chat.wait_for("The model API answered 500")
        await deck.runner.flush()
        async with deck.db.session() as session:
            run = (await session.exec(select(Run))).one()
    assert "Traceback" not in posted.text
    assert run.status == RunState.FAILED


async def test_timeout_becomes_a_clear_message(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [Step(content="late", delay=3)]
    async with deck_with_chat(make_config(llm_config(fake_openai, timeout=0.5))) as (_deck, chat):
        await chat.say("hi")
        answer = await chat.wait_for("bot: ")
        assert answer.text == "bot: The model API did not answer within 0.5 s."


async def test_malformed_response_is_reported(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [Step(raw="{not json")]
    async with deck_with_chat(make_config(llm_config(fake_openai))) as (_deck, chat):
        await chat.say("hi")
        answer = await chat.wait_for("bot: ")
        assert answer.text.startswith("bot: The model API"), answer.text


async def test_history_is_given_within_memory_turns(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    async with deck_with_chat(make_config(llm_config(fake_openai))) as (_deck, chat):
        for word in ("one", "two", "three"):
            await chat.say(word)
            await chat.wait_for(f"echo: {word}")
    last = fake_openai.requests[-1]["messages"]
    contents = [m["content"] for m in last if m["role"] != "system"]
    assert contents == ["one", "echo: one", "two", "echo: two", "three"]


async def test_unavailable_without_a_key(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_OPENAI_KEY")
    async with deck_with_chat(make_config(llm_config(fake_openai))) as (_deck, chat):
        await chat.say("/agents")
        await chat.wait_for("bot (llm, unavailable: no API key")
        await chat.say("hi")
        await chat.wait_for("Agent 'bot' is unavailable: no API key")
    assert fake_openai.requests == []


async def test_gated_tool_waits_for_approval_then_runs(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [call("run_command", argv=["echo", "approved-output"]), say("it printed")]
    async with deck_with_chat(make_config(llm_config(fake_openai))) as (_deck, chat):
        await chat.say("run echo")
        card = await chat.wait_for("Approval needed")
        assert "echo approved-output" in card.text
        approval_id = card.text.split("(")[1].split(")")[0]
        await chat.press(f"{approval_id}:approve")
        await chat.wait_for("bot: it printed")
    tool = next(m for m in fake_openai.requests[1]["messages"] if m["role"] == "tool")
    assert tool["content"] == "exit code 0\napproved-output\n"


async def test_denied_tool_tells_the_model(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [call("run_command", argv=["rm", "-rf", "/tmp/x"]), say("understood")]
    async with deck_with_chat(make_config(llm_config(fake_openai))) as (_deck, chat):
        await chat.say("clean up")
        card = await chat.wait_for("Approval needed")
        approval_id = card.text.split("(")[1].split(")")[0]
        await chat.say(f"/deny {approval_id} too risky")
        await chat.wait_for("bot: understood")
    tool = next(m for m in fake_openai.requests[1]["messages"] if m["role"] == "tool")
    assert tool["content"] == "Denied by test:admin; the action did not run. Reason: too risky"


class _DeployTool(Tool):
    name = "deploy"
    description = "Deploy a version."
    parameters: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "properties": {"version": {"type": "string"}},
        "required": ["version"],
    }
    policy = Policy(approval=ApprovalMode.ALWAYS)

    async def preview(self, arguments: dict[str, Any]) -> str:
        return f"would change 3 files to {arguments['version']}"

    async def call(self, arguments: dict[str, Any], ctx: ToolCallContext) -> str:
        return f"deployed {arguments['version']}"


async def test_a_tools_preview_is_on_the_card(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [call("deploy", version="v7"), say("deployed it")]
    async with deck_with_chat(make_config(llm_config(fake_openai))) as (deck, chat):
        deck.roster.get("bot")._tools["deploy"] = _DeployTool()  # type: ignore[attr-defined]
        await chat.say("ship v7")
        card = await chat.wait_for("Approval needed")
        assert "Preview:\nwould change 3 files to v7" in card.text
        await chat.press(f"{card.text.split('(')[1].split(')')[0]}:approve")
        assert (await chat.wait_for("deployed it")).text == "bot: deployed it"
