"""The dispatcher: routing, roles, refusals, stopping, and chats that never wait on each other."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlmodel import select

from bot.deck import Deck
from storage.models import Run, RunState
from tests.fakes.chat import ChatRecorder
from tests.support.config import make_config
from tests.support.decks import DeckFactory, audit_actions
from tests.support.process_groups import read_pid
from tests.support.waiting import eventually

CONFIG = """
[deck]
default_agent = "echo"
[[users]]
id = "test:admin"
role = "admin"
[[users]]
id = "test:op"
role = "operator"
[[users]]
id = "test:viewer"
role = "viewer"
[[agents]]
name = "echo"
kind = "echo"
[[agents]]
name = "other"
kind = "echo"
[[agents]]
name = "slow"
kind = "command"
command = ["sleep", "{input}"]
timeout = 30
[[agents]]
name = "quick"
kind = "command"
command = ["sleep", "{input}"]
timeout = 0.5
[[bindings]]
chat = "test:bound"
agent = "other"
"""


async def test_routing_ask_mention_binding_default(deck_with_chat: DeckFactory) -> None:
    async with deck_with_chat(make_config(CONFIG)) as (_deck, chat):
        await chat.say("/ask other one")
        await chat.say("@other two")
        await chat.say("three", chat="test:bound")
        await chat.say("four")
        needles = ("other: one", "other: two", "other: three", "echo: four")
        answers = [(await chat.wait_for(needle)).text for needle in needles]
        assert answers == list(needles)


async def test_unknown_user_gets_one_refusal_and_an_audit_event(
    deck_with_chat: DeckFactory,
) -> None:
    async with deck_with_chat(make_config(CONFIG)) as (deck, chat):
        await chat.say("hello", user="test:stranger")
        await chat.say("again", user="test:stranger")
        await chat.wait_for("I only work for the people listed")
        await deck.tasks.drain()
        assert len(chat.texts()) == 1
        assert (await audit_actions(deck)).count("refused.unknown_user") == 2


async def test_roles_are_enforced(deck_with_chat: DeckFactory) -> None:
    async with deck_with_chat(make_config(CONFIG)) as (deck, chat):
        await chat.say("/ask echo hi", user="test:viewer")
        await chat.wait_for("You need the operator role to use /ask.")
        await chat.say("just text", user="test:viewer")
        await chat.wait_for("You need the operator role to talk to agents.")
        await chat.say("/disable echo", user="test:op")
        await chat.wait_for("You need the admin role to use /disable.")
        await chat.say("/agents", user="test:viewer")
        await chat.wait_for("echo (echo, ready)")
        assert "refused.role" in await audit_actions(deck)


async def test_unknown_command_and_agent(deck_with_chat: DeckFactory) -> None:
    async with deck_with_chat(make_config(CONFIG)) as (_deck, chat):
        await chat.say("/nope")
        unknown = await chat.wait_for("Unknown command")
        assert unknown.text.startswith("Unknown command /nope. Commands: /agents")
        await chat.say("/ask ghost hi")
        ghost = await chat.wait_for("No agent named")
        assert ghost.text == "No agent named 'ghost'. Agents: echo, other, slow, quick."


async def test_disable_and_enable(deck_with_chat: DeckFactory) -> None:
    async with deck_with_chat(make_config(CONFIG)) as (_deck, chat):
        await chat.say("/disable other")
        await chat.say("/ask other hi")
        await chat.wait_for("Agent 'other' is unavailable: disabled from chat")
        await chat.say("/enable other")
        await chat.say("/ask other back")
        assert (await chat.wait_for("other: b")).text == "other: back"


async def test_oversized_message_is_refused(deck_with_chat: DeckFactory) -> None:
    async with deck_with_chat(make_config(CONFIG)) as (_deck, chat):
        await chat.say("x" * 25_000)
        refusal = await chat.wait_for("That message is")
        assert refusal.text == (
            "That message is 25,000 characters; the limit is 20,000. Send a shorter one."
        )


async def test_slow_agent_never_delays_another_chat(deck_with_chat: DeckFactory) -> None:
    async with deck_with_chat(make_config(CONFIG)) as (deck, chat):
        await chat.say("/ask slow 25", chat="test:a")  # runs until it is stopped below
        assert await eventually(lambda: "slow" in deck.runner.active().values(), timeout=10)
        await chat.say("/ask echo fast", chat="test:b")
        await chat.wait_for("echo: fast")
        await chat.say("/stop all", chat="test:b")
        # The slow run was still running when the other chat was answered.
        assert (await chat.wait_for("Stopped")).text == "Stopped 1 run(s)."
        assert (await chat.wait_for("slow: stopped")).text == "slow: stopped."


async def test_stop_kills_the_process_group(deck_with_chat: DeckFactory, tmp_path: Path) -> None:
    config = (
        CONFIG
        + '[[agents]]\nname = "tree"\nkind = "command"\ncommand = ["/bin/sh", "-c", "sleep 30 & echo $! > {input}; wait"]\n'
    )
    pidfile = tmp_path / "child.pid"
    async with deck_with_chat(make_config(config)) as (deck, chat):
        await chat.say(f"/ask tree {pidfile}")
        child = await read_pid(pidfile)
        await chat.say("/stop tree")
        await chat.wait_for("tree: stopped.")
        await deck.tasks.drain()
        # The orphaned child is reaped by init soon after.
        assert await eventually(lambda: not _alive(child), timeout=5)


async def test_command_timeout_kills_and_says_so(deck_with_chat: DeckFactory) -> None:
    async with deck_with_chat(make_config(CONFIG)) as (deck, chat):
        await chat.say("/ask quick 10")
        await chat.wait_for("Timed out after 0.5 s; the process group was killed.")
        await deck.runner.flush()
        async with deck.db.session() as session:
            run = (await session.exec(select(Run).where(Run.agent == "quick"))).one()
        assert run.status == RunState.FAILED


async def test_runs_lists_recent_work(deck_with_chat: DeckFactory) -> None:
    async with deck_with_chat(make_config(CONFIG)) as (_deck, chat):
        await chat.say("hello")
        await chat.wait_for("echo: hello")
        await chat.say("/runs")
        posted = await chat.wait_for("Recent runs")
        assert " echo done " in posted.text


async def test_forget_clears_the_conversation(deck_with_chat: DeckFactory) -> None:
    async with deck_with_chat(make_config(CONFIG)) as (deck, chat):
        await chat.say("remember me")
        await chat.wait_for("echo: remember me")
        await chat.say("/forget")
        await chat.wait_for("Forgot 2 message(s).")
        assert await deck.memory.recent_turns("test:chat", "echo", 5) == []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def answer_to(chat: ChatRecorder, command: str) -> str:
    """Say `command` and return the first message posted after it (failing after a while)."""
    seen = len(chat.posted)
    await chat.say(command)
    async with asyncio.timeout(10):
        while len(chat.posted) == seen:
            await asyncio.sleep(0.01)
    return chat.posted[seen].text


async def running(deck: Deck, agent: str) -> bool:
    async with deck.db.session() as session:
        rows = await session.exec(select(Run).where(Run.agent == agent))
        return any(run.status == RunState.RUNNING for run in rows)


async def test_commands_answer_while_an_agent_runs_in_the_chat(
    deck_with_chat: DeckFactory,
) -> None:
    async with deck_with_chat(make_config(CONFIG)) as (deck, chat):
        await chat.say("/ask slow 30")
        await eventually(lambda: running(deck, "slow"), step=0.02)
        answers = {
            command: await answer_to(chat, command)
            for command in ("/runs", "/jobs", "/help", "/cost", "/memory", "/audit 3", "/agents")
        }
        assert "slow" in answers["/runs"], answers
        assert "/agents" in answers["/help"], answers
        assert "slow (command, ready)" in answers["/agents"], answers
        assert await running(deck, "slow")  # all answered while the run went on
        await chat.say("/forget")  # clears what the running agent reads: waits for the run
        await chat.say("/stop slow")
        assert (await chat.wait_for("slow: stopped")).text == "slow: stopped."
        await deck.tasks.drain()
        texts = chat.texts()
        stopped = texts.index("slow: stopped.")
        forgot = next(i for i, text in enumerate(texts) if "forgot" in text.lower())
        assert stopped < forgot, texts


async def test_an_unknown_agent_named_with_at_is_said(deck_with_chat: DeckFactory) -> None:
    async with deck_with_chat(make_config(CONFIG)) as (deck, chat):
        await chat.say("@nosuch restart the api")
        await chat.wait_for("No agent named 'nosuch'. Agents: echo, other, slow, quick.")
        await chat.say("@Other shout")
        await chat.wait_for("other: shout")
        await chat.say("@ alone")  # not a name: free text, to the default agent
        await chat.wait_for("echo: @ alone")
        await chat.say("@other\nline two")
        await chat.wait_for("other: line two")
        await deck.tasks.drain()
        assert not any("echo: @nosuch" in text for text in chat.texts()), chat.texts()
