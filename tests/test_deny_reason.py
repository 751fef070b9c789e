"""Deny with reason: only plain text is a reason; the wait ends by itself or by Cancel.

Telegram asks with a ForceReply on the card's message; the card says whose reason it
waits for, with a Cancel button. Someone else's reply is not the reason.

The attack: after "Deny with reason", an admin's next message `/secret set X value` was
taken as the reason; the value was stored in `approvals.reason`, `runs.output` and the
audit log, and the secret was never set.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.app import open_deck
from bot.deck import Deck
from bot.intake import actions
from bot.runs.reasons import REASON_WAIT
from bot.transports.slack.inbound import SlackBotIdentity, from_command
from storage.clock import FakeClock
from storage.db import Database, sqlite_url
from storage.models import Approval, AuditEvent, Run
from tests.fakes.telegram_server import FakeTelegram
from tests.support.chaos import BotProcess
from tests.support.config import make_config
from tests.support.telegram import ADMIN
from tests.support.waiting import eventually

OTHER = 1002
GROUP = -100555
VALUE = "hunter2-Reason-Leak-93e1"
CONFIG = f"""
[deck]
default_agent = "echo"
[telegram]
token = "env:TG_TOKEN"
base_url = "BASE_URL"
[[users]]
id = "telegram:{ADMIN}"
role = "admin"
[[users]]
id = "telegram:{OTHER}"
role = "admin"
[[agents]]
name = "echo"
kind = "echo"
[[agents]]
name = "shell"
kind = "command"
command = ["echo", "{{input}}"]
approval = "always"
approvers = ["telegram:{ADMIN}"]
"""


@contextlib.asynccontextmanager
async def running(fake: FakeTelegram, clock: FakeClock | None = None) -> AsyncIterator[Deck]:
    config = make_config(CONFIG.replace("BASE_URL", fake.base_url))
    async with asyncio.timeout(30), open_deck(config, clock=clock) as (deck, _):
        yield deck


def said(fake: FakeTelegram, needle: str, chat: int = ADMIN) -> bool:
    return any(needle in text for text in fake.sent_texts(chat))


def message_id(fake: FakeTelegram, needle: str) -> int:
    (found,) = [mid for (_, mid), m in fake.messages.items() if needle in m.get("text", "")]
    return found


def button(fake: FakeTelegram, mid: int, label: str, chat: int = ADMIN) -> str:
    keyboard = fake.messages[(chat, mid)]["reply_markup"]["inline_keyboard"]
    (data,) = [str(b["callback_data"]) for row in keyboard for b in row if b["text"] == label]
    return data


async def deny_with_reason(deck: Deck, fake: FakeTelegram, chat: int = ADMIN) -> str:
    """Ask for a gated command, press "Deny with reason"; the approval id."""
    fake.user_says("/ask shell echo deploy", user=ADMIN, chat=chat)
    await fake.wait_until(lambda: said(fake, "Approval needed", chat))
    card = message_id(fake, "Approval needed")
    approval = str(fake.messages[(chat, card)]["text"]).split("(", 1)[1].split(")", 1)[0]
    deny = button(fake, card, "Deny with reason", chat)
    fake.press(deny, message_id=card, chat=chat, user=ADMIN)
    await fake.wait_until(lambda: said(fake, "reply with the reason for denying", chat))
    await fake.wait_until(
        lambda: "Waiting for a reason from" in fake.messages[(chat, card)]["text"]
    )
    return approval


def prompt_of(fake: FakeTelegram, chat: int = ADMIN) -> int:
    return message_id(fake, "reply with the reason for denying")


async def test_the_prompt_is_a_force_reply_to_the_card_which_says_whose_reason_it_awaits(
    fake_telegram: FakeTelegram,
) -> None:
    async with running(fake_telegram) as deck:
        approval = await deny_with_reason(deck, fake_telegram)
        card = message_id(fake_telegram, "Approval needed")
        prompt = prompt_of(fake_telegram)
        force = fake_telegram.force_replies[(ADMIN, prompt)]
        assert force["force_reply"] is True
        assert force["selective"] is True
        assert fake_telegram.messages[(ADMIN, prompt)]["reply_to_message"]["message_id"] == card
        shown = fake_telegram.messages[(ADMIN, card)]
        assert f"Waiting for a reason from telegram:{ADMIN}…" in shown["text"]
        assert button(fake_telegram, card, "Cancel") == f"reason|{approval}"
        fake_telegram.user_says("not today", user=ADMIN, reply_to=prompt)
        await fake_telegram.wait_until(
            lambda: (
                f"Denied by telegram:{ADMIN} at" in fake_telegram.messages[(ADMIN, card)]["text"]
            )
        )
        assert await stored(deck, approval) == "not today"


async def test_someone_elses_reply_to_the_prompt_is_not_the_reason(
    fake_telegram: FakeTelegram,
) -> None:
    async with running(fake_telegram) as deck:
        approval = await deny_with_reason(deck, fake_telegram, chat=GROUP)
        prompt = prompt_of(fake_telegram, GROUP)
        fake_telegram.user_says("hijacked reason", user=OTHER, chat=GROUP, reply_to=prompt)
        await fake_telegram.wait_until(lambda: said(fake_telegram, "echo: hijacked reason", GROUP))
        assert await status(deck, approval) == "pending"
        fake_telegram.user_says("the real one", user=ADMIN, chat=GROUP, reply_to=prompt)
        await fake_telegram.wait_until(lambda: said(fake_telegram, "the real one", GROUP))
        assert await stored(deck, approval) == "the real one"


async def stored(deck: Deck, approval: str) -> str | None:
    async def decided() -> Approval:
        while True:
            row = await deck.approvals.get(approval)
            if row is not None and row.status != "pending":
                return row
            await asyncio.sleep(0.05)

    async with asyncio.timeout(5):
        return (await decided()).reason


async def status(deck: Deck, approval: str) -> str:
    row = await deck.approvals.get(approval)
    assert row is not None
    return str(row.status)


async def test_a_command_is_never_the_reason_it_runs_and_the_wait_goes_on(
    fake_telegram: FakeTelegram,
) -> None:
    async with running(fake_telegram) as deck:
        approval = await deny_with_reason(deck, fake_telegram)
        fake_telegram.user_says(f"/secret set API_KEY {VALUE}", user=ADMIN)
        await fake_telegram.wait_until(lambda: said(fake_telegram, "Stored API_KEY"))
        assert await status(deck, approval) == "pending"
        fake_telegram.user_says("not on a Friday", user=ADMIN)
        await fake_telegram.wait_until(
            lambda: said(fake_telegram, f"Denied by telegram:{ADMIN}: not on a Friday")
        )
        await deck.tasks.drain()
        assert deck.vault.get("API_KEY") == VALUE
        await deck.runner.flush()
        async with deck.db.session() as session:
            rows = [
                *(await session.exec(select(Approval))).all(),
                *(await session.exec(select(Run))).all(),
                *(await session.exec(select(AuditEvent))).all(),
            ]
    assert VALUE not in repr(rows)
    assert stored_reason(rows, approval) == "not on a Friday"


def stored_reason(rows: Sequence[object], approval: str) -> str | None:
    (row,) = [r for r in rows if isinstance(r, Approval) and r.id == approval]
    return row.reason


async def test_the_wait_ends_after_a_few_minutes_and_the_approval_stays_open(
    fake_telegram: FakeTelegram,
) -> None:
    clock = FakeClock()
    async with running(fake_telegram, clock) as deck:
        approval = await deny_with_reason(deck, fake_telegram)
        clock.advance(REASON_WAIT + timedelta(seconds=1))
        fake_telegram.user_says("is this a reason?", user=ADMIN)  # too late: plain text
        await fake_telegram.wait_until(lambda: said(fake_telegram, "echo: is this a reason?"))
        await actions.sweep_approvals(deck)
        prompt = message_id(fake_telegram, "No reason came")
        assert "reply_markup" not in fake_telegram.messages[(ADMIN, prompt)]
        assert await status(deck, approval) == "pending"
        assert said(fake_telegram, "still open")
        card = message_id(fake_telegram, "Approval needed")
        assert "Waiting for a reason" not in fake_telegram.messages[(ADMIN, card)]["text"]
        labels = fake_telegram.messages[(ADMIN, card)]["reply_markup"]["inline_keyboard"]
        assert "Cancel" not in str(labels)


async def test_cancel_on_the_prompt_ends_the_wait(fake_telegram: FakeTelegram) -> None:
    async with running(fake_telegram) as deck:
        approval = await deny_with_reason(deck, fake_telegram)
        card = message_id(fake_telegram, "Approval needed")
        cancel = button(fake_telegram, card, "Cancel")
        fake_telegram.press(cancel, message_id=card, chat=ADMIN, user=ADMIN)
        await fake_telegram.wait_until(lambda: said(fake_telegram, "Cancelled"))
        fake_telegram.user_says("just chatting", user=ADMIN)
        await fake_telegram.wait_until(lambda: said(fake_telegram, "echo: just chatting"))
        assert await status(deck, approval) == "pending"
        await fake_telegram.wait_until(
            lambda: "Waiting for" not in fake_telegram.messages[(ADMIN, card)]["text"]
        )
        fake_telegram.press(cancel, message_id=card, chat=ADMIN, user=ADMIN)  # again
        answers = await fake_telegram.wait_for("answerCallbackQuery", 3)
        assert "no reason" in answers[-1].params["text"].lower()


def test_a_slack_deck_command_is_marked_as_a_command_whatever_its_words() -> None:
    me = SlackBotIdentity(user_id="UBOT", bot_id="BBOT", team_id="T1", name="deck")
    body = {"text": "never on a friday", "channel_id": "C1", "user_id": "U1", "trigger_id": "t"}
    incoming = from_command(body, me, {"secret"})
    assert incoming.text == "never on a friday"  # for the chat's agent, as before
    assert incoming.slash_command
    assert type(incoming).from_json(incoming.to_json()).slash_command


CRASH_CONFIG = f"""
[deck]
default_agent = "count"
[scheduler]
enabled = false
[telegram]
token = "env:TG_TOKEN"
base_url = "BASE_URL"
[[users]]
id = "telegram:{ADMIN}"
role = "admin"
[[agents]]
name = "count"
kind = "command"
command = ["/bin/sh", "-c", "echo \\"$0\\" >> COUNT; echo counted", "{{input}}"]
[[agents]]
name = "shell"
kind = "command"
command = ["echo", "{{input}}"]
approval = "always"
approvers = ["telegram:{ADMIN}"]
"""


@pytest.mark.slow
async def test_a_reason_cut_by_kill_9_is_not_handled_again_after_the_restart(
    fake_telegram: FakeTelegram, tmp_path: Path
) -> None:
    """The reason is claimed in the inbox before it decides: the restart does not hand
    it out again as a message for the default agent (counted in a file)."""
    count = tmp_path / "count.txt"
    config = tmp_path / "deck.toml"
    config.write_text(
        CRASH_CONFIG.replace("BASE_URL", fake_telegram.base_url).replace("COUNT", str(count))
    )
    bot = BotProcess(tmp_path / "data", config, {"TG_TOKEN": fake_telegram.token})
    try:
        await bot.start()
        fake_telegram.user_says("/ask shell echo deploy", user=ADMIN)
        await fake_telegram.wait_until(lambda: said(fake_telegram, "Approval needed"), 60)
        card = message_id(fake_telegram, "Approval needed")
        deny = button(fake_telegram, card, "Deny with reason")
        fake_telegram.press(deny, message_id=card, chat=ADMIN, user=ADMIN)
        await fake_telegram.wait_until(lambda: said(fake_telegram, "reply with the reason"), 20)
        await fake_telegram.wait_until(
            lambda: "Waiting for" in fake_telegram.messages[(ADMIN, card)]["text"], 20
        )
        fake_telegram.hold("editMessageText")  # the card's edit, after the decision is stored
        fake_telegram.user_says("not-on-a-friday", user=ADMIN)
        await fake_telegram.wait_until(lambda: "editMessageText" in fake_telegram.waiting, 20)
        await bot.kill()
        fake_telegram.release("editMessageText")

        await bot.start()
        fake_telegram.user_says("after-the-restart", user=ADMIN)
        await eventually(lambda: "after-the-restart" in _lines(count), 60)
        await fake_telegram.wait_until(lambda: said(fake_telegram, "Denied by"), 20)
    finally:
        await bot.stop()
    assert _lines(count) == ["after-the-restart"]  # the reason never went to the agent
    async with Database(sqlite_url(tmp_path / "data")) as db, db.session() as session:
        (approval,) = (await session.exec(select(Approval))).all()
    assert approval.reason == "not-on-a-friday"


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []
