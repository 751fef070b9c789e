"""Run again, in process: the offer a cut run leaves follows the agent's approval policy.

A run left `running` by a process that died (as kill -9 leaves it) is put in the
database by hand; the next deck start reports it with the Run again card.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlmodel import select

from bot.intake import actions
from storage.clock import FakeClock
from storage.models import Approval, Run, RunState
from tests.fakes.chat import Posted
from tests.support.approvals import USERS
from tests.support.config import make_config
from tests.support.decks import audit_actions, chat_deck

AGENTS = """
[[agents]]
name = "deploy"
kind = "command"
command = ["echo", "deployed", "{input}"]
approvers = ["test:ada", "test:bob"]
self_approval = false
[[agents]]
name = "echo"
kind = "echo"
"""


async def leave_running(agent: str, text: str, *, user: str = "test:ada") -> str:
    """A run a dead process left `running`, in the database the next deck opens."""
    config = make_config(USERS + AGENTS)
    run_id = uuid.uuid4().hex
    async with chat_deck(config) as (deck, _chat), deck.db.session() as session:
        session.add(
            Run(
                id=run_id,
                agent=agent,
                chat_id="test:chat",
                user_id=user,
                input=text,
                status=RunState.RUNNING,
                started_at=deck.clock.now(),
                owner="another-host:4242:dead",
            )
        )
        await session.commit()
    return run_id


def offer_id(card: Posted) -> str:
    (button,) = card.message.buttons
    assert button.label == "Run again"
    return button.value.partition(":")[0]


async def test_the_agents_approvers_and_self_approval_rule_apply() -> None:
    await leave_running("deploy", "v2")
    async with chat_deck(make_config(USERS + AGENTS)) as (deck, chat):
        card = await chat.wait_for("interrupted by a restart and did not finish (v2).")
        assert "The requester cannot approve it." in card.text
        value = f"{offer_id(card)}:approve"
        await chat.press(value, user="test:ada")  # asked for it: may not run it again
        await chat.press(value, user="test:admin")  # an admin, but not listed for deploy
        await deck.tasks.drain()
        assert not any("deployed" in text for text in chat.texts())
        await chat.press(value, user="test:bob")
        await chat.wait_for("deployed v2")
        await chat.wait_for("Run again by test:bob at")
        await deck.tasks.drain()
        seen = await audit_actions(deck)
    answers = [text for text, _ in chat.press_answers]
    assert answers[:2] == [
        "You asked for this; someone else has to approve it.",
        "You are not one of the approvers of this request.",
    ]
    assert "Approval needed" not in "".join(chat.texts())  # the press was the approval
    assert seen.count("approval.refused") == 2
    assert seen.count("run.interrupted") == 1


async def test_an_offer_nobody_takes_expires_quietly() -> None:
    cut = await leave_running("echo", "hello")
    clock = FakeClock()
    async with chat_deck(make_config(USERS + AGENTS), clock) as (deck, chat):
        card = await chat.wait_for("interrupted by a restart and did not finish (hello).")
        clock.advance(timedelta(minutes=31))
        await actions.sweep_approvals(deck)
        await chat.wait_for("Not run again: the offer expired at")
        await deck.tasks.drain()
        await deck.runner.flush()
        async with deck.db.session() as session:
            runs = {run.id: run for run in (await session.exec(select(Run))).all()}
    assert [p.text for p in chat.posted if p is not card] == []  # no "denied" message
    assert runs.pop(cut).status == RunState.INTERRUPTED
    (offer,) = runs.values()
    assert offer.status == RunState.DENIED
    assert offer.input == "hello"


async def test_deny_by_text_declines_it_and_a_second_start_reports_nothing_again() -> None:
    await leave_running("echo", "hello")
    config = make_config(USERS + AGENTS)
    async with chat_deck(config) as (deck, chat):
        card = await chat.wait_for("interrupted by a restart")
        await chat.say(f"/deny {offer_id(card)}")
        await chat.wait_for("Not run again: declined by test:admin")
        await deck.tasks.drain()
    async with chat_deck(config) as (deck, chat):
        await deck.tasks.drain()
        async with deck.db.session() as session:
            approvals = (await session.exec(select(Approval))).all()
    assert chat.texts() == []  # reported once, by the first start
    assert len(approvals) == 1


async def test_a_run_of_an_agent_gone_from_the_config_is_reported_without_a_button() -> None:
    await leave_running("retired", "old work")
    async with chat_deck(make_config(USERS + AGENTS)) as (_deck, chat):
        posted = await chat.wait_for("interrupted by a restart and did not finish (old work).")
    assert posted.message.buttons == ()
