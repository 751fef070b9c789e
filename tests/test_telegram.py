"""The Telegram transport end to end: the real transport and the real python-telegram-bot,
talking to the fake Bot API server on 127.0.0.1 through `base_url`."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from sqlmodel import select

from bot.commands import command_table
from storage.models import InboxItem
from tests.fakes.telegram_server import BOT_USERNAME, FakeTelegram
from tests.support.config import make_config
from tests.support.decks import audit_actions, running
from tests.support.telegram import ADMIN, GROUP, OPERATOR, STRANGER, config_for, texts_to


async def test_text_in_reply_out_and_commands_registered(fake_telegram: FakeTelegram) -> None:
    async with running(config_for(fake_telegram)):
        fake_telegram.user_says("hello there", user=ADMIN)
        await fake_telegram.wait_for("sendMessage")
    assert texts_to(fake_telegram, ADMIN) == ["<b>echo</b>: hello there"]
    assert fake_telegram.calls_to("sendMessage")[0].params["parse_mode"] == "HTML"
    names = [c["command"] for c in fake_telegram.commands]
    assert "help" in names
    assert "approve" in names
    assert fake_telegram.calls_to("deleteWebhook"), "polling mode removes any webhook first"


async def test_agent_output_is_escaped_not_markup(fake_telegram: FakeTelegram) -> None:
    async with running(config_for(fake_telegram)):
        fake_telegram.user_says("<b>not bold</b> & co", user=ADMIN)
        await fake_telegram.wait_for("sendMessage")
    assert texts_to(fake_telegram, ADMIN) == ["<b>echo</b>: &lt;b&gt;not bold&lt;/b&gt; &amp; co"]
    assert fake_telegram.sent_texts(ADMIN) == ["echo: <b>not bold</b> & co"]


async def test_long_reply_is_split_and_never_inside_a_pre(fake_telegram: FakeTelegram) -> None:
    script = "print(''.join(f'line {i} <&>\\n' for i in range(300)))"
    async with running(config_for(fake_telegram)):
        fake_telegram.user_says(f"/ask long {script}", user=ADMIN)
        await fake_telegram.wait_until(lambda: "line 299" in "".join(fake_telegram.sent_texts()))
    pages = [c.params["text"] for c in fake_telegram.calls_to("sendMessage")] + [
        c.params["text"] for c in fake_telegram.calls_to("editMessageText")
    ]
    result = [p for p in pages if "line " in p]
    assert len(result) >= 2
    for page in result:
        assert len(page.encode("utf-16-le")) // 2 <= 4096
        assert page.count("<pre>") == page.count("</pre>")
    shown = "".join(fake_telegram.sent_texts(ADMIN))
    assert all(f"line {i} <&>" in shown for i in (0, 150, 299))


async def test_very_long_output_goes_as_a_document(fake_telegram: FakeTelegram) -> None:
    script = "print('x' * 20000)"
    async with running(config_for(fake_telegram)):
        fake_telegram.user_says(f"/ask long {script}", user=ADMIN)
        await fake_telegram.wait_for("sendDocument")
    (content,) = fake_telegram.documents.values()
    assert b"x" * 20000 in content
    caption = fake_telegram.calls_to("sendDocument")[0].params["caption"]
    assert "attached" in caption


async def test_html_rejected_by_telegram_is_resent_plain(fake_telegram: FakeTelegram) -> None:
    fake_telegram.fail_next(
        "sendMessage",
        status=400,
        retry_after=None,
        description="Bad Request: can't parse entities: Unsupported start tag at byte offset 3",
    )
    async with running(config_for(fake_telegram)):
        fake_telegram.user_says("x < y", user=ADMIN)
        await fake_telegram.wait_for("sendMessage")
    (call,) = fake_telegram.calls_to("sendMessage")
    assert call.params["text"] == "echo: x < y"
    assert "parse_mode" not in call.params


async def test_approval_by_approver_non_approver_and_twice(fake_telegram: FakeTelegram) -> None:
    async with running(config_for(fake_telegram)) as deck:
        fake_telegram.user_says("/ask shell hi from telegram", user=OPERATOR)
        (card,) = [
            c
            for c in await fake_telegram.wait_for("sendMessage")
            if "Approval needed" in c.params["text"]
        ]
        buttons = {
            b["text"]: b["callback_data"]
            for row in card.params["reply_markup"]["inline_keyboard"]
            for b in row
        }
        assert {"Approve", "Deny"} <= set(buttons)
        approve = buttons["Approve"]
        assert approve.startswith("approval|")
        assert len(approve.encode()) <= 64
        message_id = (await _message_ids(fake_telegram, "Approval needed"))[0]

        fake_telegram.press(approve, message_id=message_id, chat=OPERATOR, user=OPERATOR)
        answers = await fake_telegram.wait_for("answerCallbackQuery")
        assert answers[0].params["show_alert"] is True
        assert "not one of the approvers" in answers[0].params["text"]

        fake_telegram.press(approve, message_id=message_id, chat=OPERATOR, user=ADMIN)
        await fake_telegram.wait_until(
            lambda: any(
                "hi from telegram" in t and "shell" in t for t in fake_telegram.sent_texts()
            ),
        )
        edited = fake_telegram.messages[(OPERATOR, message_id)]
        await fake_telegram.wait_until(lambda: edited["text"].startswith("Approved"))
        assert edited["text"].startswith(f"Approved by telegram:{ADMIN}")
        assert "reply_markup" not in edited, "the outcome card has no buttons left"

        fake_telegram.press(approve, message_id=message_id, chat=OPERATOR, user=ADMIN)
        answers = await fake_telegram.wait_for("answerCallbackQuery", 3)
        assert "already decided" in answers[2].params["text"]
        await deck.tasks.drain()
        runs = [t for t in fake_telegram.sent_texts(OPERATOR) if "hi from telegramexit 0" in t]
        assert len(runs) == 1, "the second press ran nothing"
        assert (await audit_actions(deck)).count("approval.approved") == 1


async def _message_ids(fake: FakeTelegram, needle: str) -> list[int]:
    return [mid for (_, mid), m in fake.messages.items() if needle in m.get("text", "")]


async def test_stranger_press_is_answered_anyway(
    fake_telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.transports.telegram import transport

    monkeypatch.setattr(transport, "PRESS_ANSWER_SECONDS", 0.05)
    async with running(config_for(fake_telegram)):
        fake_telegram.user_says("hi", user=ADMIN)
        await fake_telegram.wait_for("sendMessage")
        message_id = (await _message_ids(fake_telegram, "echo: hi"))[0]
        fake_telegram.press("approval|x:approve", message_id=message_id, chat=ADMIN, user=STRANGER)
        (answer,) = await fake_telegram.wait_for("answerCallbackQuery")
        assert (answer.params["show_alert"], answer.params["text"]) == (
            True,
            "Sorry, I only work for the people listed in my config. Ask an admin to add you: "
            f"your id is telegram:{STRANGER}.",
        )


async def test_redelivered_update_is_handled_once(fake_telegram: FakeTelegram) -> None:
    async with running(config_for(fake_telegram)) as deck:
        update_id = fake_telegram.user_says("only once", user=ADMIN)
        await fake_telegram.wait_for("sendMessage")
        fake_telegram.redeliver(update_id)
        fake_telegram.user_says("next", user=ADMIN)
        await fake_telegram.wait_for("sendMessage", 2)
        await deck.tasks.drain()
    assert texts_to(fake_telegram, ADMIN) == ["<b>echo</b>: only once", "<b>echo</b>: next"]


async def test_a_429_is_waited_out_and_retried(fake_telegram: FakeTelegram) -> None:
    fake_telegram.fail_next("sendMessage", status=429, retry_after=1)
    async with running(config_for(fake_telegram)):
        fake_telegram.user_says("patience", user=ADMIN)
        (call,) = await fake_telegram.wait_for("sendMessage", timeout=5)
    refused = [c for c in fake_telegram.calls if c.method == "sendMessage" and c.status == 429]
    assert len(refused) == 1
    assert call.at - refused[0].at >= 0.95, "waited for retry_after before sending again"


async def test_a_blocked_chat_is_skipped_and_others_go_on(fake_telegram: FakeTelegram) -> None:
    fake_telegram.blocked.add(ADMIN)
    async with running(config_for(fake_telegram)) as deck:
        fake_telegram.user_says("into the void", user=ADMIN)
        fake_telegram.user_says("still here", user=OPERATOR)
        await fake_telegram.wait_for("sendMessage")
        await deck.tasks.drain()
    assert texts_to(fake_telegram, OPERATOR) == ["<b>echo</b>: still here"]


async def test_groups_take_only_commands_mentions_and_replies(fake_telegram: FakeTelegram) -> None:
    async with running(config_for(fake_telegram)) as deck:
        fake_telegram.user_says("chatter among humans", user=ADMIN, chat=GROUP)
        fake_telegram.user_says("/agents@other_bot", user=ADMIN, chat=GROUP)
        fake_telegram.user_says(f"hey @{BOT_USERNAME} first", user=ADMIN, chat=GROUP)
        await fake_telegram.wait_for("sendMessage")
        (reply_id,) = await _message_ids(fake_telegram, "echo: hey first")
        fake_telegram.user_says("second", user=ADMIN, chat=GROUP, reply_to=reply_id)
        fake_telegram.user_says(f"/ask@{BOT_USERNAME} echo third", user=ADMIN, chat=GROUP)
        await fake_telegram.wait_for("sendMessage", 3)
        await deck.tasks.drain()
    assert fake_telegram.sent_texts(GROUP) == ["echo: hey first", "echo: second", "echo: third"]


async def test_forum_topic_replies_stay_in_their_thread(fake_telegram: FakeTelegram) -> None:
    async with running(config_for(fake_telegram)):
        fake_telegram.user_says(f"@{BOT_USERNAME} topic", user=ADMIN, chat=GROUP, thread=77)
        (call,) = await fake_telegram.wait_for("sendMessage")
    assert int(call.params["message_thread_id"]) == 77


async def test_bad_token_at_start_is_one_clear_error(
    fake_telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.errors import TransportStartError

    monkeypatch.setenv("TG_TOKEN", "999:wrong")
    with pytest.raises(TransportStartError, match=r"rejected the bot token \(401"):
        async with running(config_for(fake_telegram)):
            pass


async def test_unreachable_api_at_start_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.errors import TransportStartError

    monkeypatch.setenv("TG_TOKEN", "1:x")
    fake = FakeTelegram()
    fake.port = 9  # nothing listens there
    with pytest.raises(TransportStartError, match="Cannot reach the Telegram Bot API at http"):
        async with running(config_for(fake)):
            pass


async def test_update_stored_but_not_handled_is_handled_after_restart(
    fake_telegram: FakeTelegram,
) -> None:
    from bot.transports.telegram import TelegramTransport
    from storage.clock import SystemClock
    from storage.db import Database
    from storage.inbox import Inbox
    from storage.writer import WriteBehind

    config = config_for(fake_telegram)
    assert config.telegram is not None
    received = asyncio.Event()

    async def crash_before_handling(_incoming: Any) -> None:
        received.set()  # stored in the inbox; the process "dies" before any work

    async with Database(config.deck.database()) as db, WriteBehind(db) as writer:
        transport = TelegramTransport(
            config.telegram,
            inbox=Inbox(db=db, writer=writer, clock=SystemClock()),
            commands=command_table(),
        )
        await transport.start(crash_before_handling)
        fake_telegram.user_says("survive the crash", user=ADMIN)
        async with asyncio.timeout(5):
            await received.wait()
        await transport.stop()
        async with db.session() as session:
            (row,) = (await session.exec(select(InboxItem))).all()
        assert row.handled_at is None

    async with running(config) as deck:
        await fake_telegram.wait_for("sendMessage")
        await deck.tasks.drain()
    assert texts_to(fake_telegram, ADMIN) == ["<b>echo</b>: survive the crash"]


async def test_approval_survives_a_restart_between_request_and_press(
    fake_telegram: FakeTelegram,
) -> None:
    config = config_for(fake_telegram)
    async with running(config):
        fake_telegram.user_says("/ask shell echo after a restart", user=ADMIN)
        await fake_telegram.wait_until(
            lambda: any("Approval needed" in t for t in fake_telegram.sent_texts())
        )
        message_id = (await _message_ids(fake_telegram, "Approval needed"))[0]
        card = fake_telegram.messages[(ADMIN, message_id)]
        approve = next(
            b["callback_data"]
            for row in card["reply_markup"]["inline_keyboard"]
            for b in row
            if b["text"] == "Approve"
        )
    async with running(config) as deck:  # a new process: the run waits in the database
        fake_telegram.press(approve, message_id=message_id, chat=ADMIN, user=ADMIN)
        await fake_telegram.wait_until(
            lambda: any("after a restartexit 0" in t for t in fake_telegram.sent_texts(ADMIN))
        )
        await deck.tasks.drain()
        assert fake_telegram.messages[(ADMIN, message_id)]["text"].startswith(
            f"Approved by telegram:{ADMIN}"
        )


async def test_start_welcomes_each_user_by_role_and_tells_a_stranger_their_id(
    fake_telegram: FakeTelegram,
) -> None:
    extra = '[[users]]\nid = "telegram:1004"\nrole = "viewer"\n'
    async with running(config_for(fake_telegram, extra)):
        fake_telegram.user_says("/start", user=ADMIN)
        fake_telegram.user_says("/start", user=1004)
        fake_telegram.user_says("/start", user=STRANGER)
        await fake_telegram.wait_for("sendMessage", count=3)
        admin = fake_telegram.sent_texts(ADMIN)
        viewer = fake_telegram.sent_texts(1004)
        stranger = fake_telegram.sent_texts(STRANGER)
    assert len(admin) == 1, admin
    assert "You are admin here (telegram:1001)" in admin[0], admin
    assert "Agents you may use: echo, shell, long." in admin[0], admin
    assert "Send plain text to talk to echo" in admin[0], admin
    assert len(viewer) == 1, viewer
    assert "You are viewer here" in viewer[0], viewer
    assert "Agents you may use" not in viewer[0], viewer
    assert stranger == [
        "Sorry, I only work for the people listed in my config. "
        "Ask an admin to add you: your id is telegram:1003."
    ]


async def test_a_telegram_deck_without_users_warns_at_start(
    fake_telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(
        f'[telegram]\ntoken = "env:TG_TOKEN"\nbase_url = "{fake_telegram.base_url}"\n'
        '[[agents]]\nname = "echo"\nkind = "echo"\n'
    )
    async with running(config):
        pass
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(w.startswith("no [[users]]: nobody may use the Telegram bot") for w in warnings), (
        warnings
    )


async def test_a_command_sent_before_the_start_waits_for_the_whole_deck(
    fake_telegram: FakeTelegram,
) -> None:
    fake_telegram.user_says("/dashboard", user=ADMIN)  # waiting at the first getUpdates
    with socket.socket() as sock:  # a free port for the dashboard
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    extra = f"[dashboard]\nenabled = true\nport = {port}\n"
    async with running(config_for(fake_telegram, extra)):
        await fake_telegram.wait_until(lambda: bool(fake_telegram.sent_texts(ADMIN)))
        answer = fake_telegram.sent_texts(ADMIN)[0]
    assert answer.startswith("Your dashboard sign-in link:"), answer
