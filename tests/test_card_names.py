"""Cards name people and approvers (#20 point 6): `[[users]] name` beside the id.

Through the fake Telegram server: the card says who asks ("Ada (telegram:1001) asks …")
and who may decide ("approvers: admin, telegram:1002"); the outcome names who decided.
A person without a name is shown by id, and a name never stands in for an id.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.app import open_deck
from tests.fakes.telegram_server import FakeTelegram
from tests.support.config import make_config

ADA, BOB = 1001, 1002
CONFIG = f"""
[deck]
default_agent = "shell"
[telegram]
token = "env:TG_TOKEN"
base_url = "BASE_URL"
[[users]]
id = "telegram:{ADA}"
role = "admin"
name = "Ada"
[[users]]
id = "telegram:{BOB}"
role = "operator"
[[agents]]
name = "shell"
kind = "command"
command = ["echo", "{{input}}"]
approval = "always"
approvers = ["admin", "telegram:{BOB}"]
"""


@pytest.fixture
async def fake_telegram(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeTelegram]:
    server = await FakeTelegram().start()
    monkeypatch.setenv("TG_TOKEN", server.token)
    yield server
    await server.stop()


def _card(fake: FakeTelegram, chat: int) -> tuple[int, str]:
    for (where, mid), message in fake.messages.items():
        if where == chat and "Approval needed" in message.get("text", ""):
            return mid, str(message["text"])
    return 0, ""


def _button(fake: FakeTelegram, chat: int, mid: int, label: str) -> str:
    keyboard = fake.messages[(chat, mid)]["reply_markup"]["inline_keyboard"]
    (data,) = [str(b["callback_data"]) for row in keyboard for b in row if b["text"] == label]
    return data


async def test_the_card_names_the_asker_and_the_approvers_and_the_outcome_the_decider(
    fake_telegram: FakeTelegram,
) -> None:
    config = make_config(CONFIG.replace("BASE_URL", fake_telegram.base_url))
    async with asyncio.timeout(30), open_deck(config):
        fake_telegram.user_says("/ask shell echo deploy", user=ADA)
        await fake_telegram.wait_until(lambda: _card(fake_telegram, ADA)[0])
        mid, text = _card(fake_telegram, ADA)
        assert f"Ada (telegram:{ADA}) asks agent shell" in text
        assert f"approvers: admin, telegram:{BOB}." in text
        fake_telegram.press(_button(fake_telegram, ADA, mid, "Approve"), message_id=mid, chat=ADA)
        await fake_telegram.wait_until(
            lambda: (
                "Approved by Ada (telegram:1001)"
                in fake_telegram.messages[(ADA, mid)].get("text", "")
            )
        )


async def test_a_person_without_a_name_is_shown_by_id(fake_telegram: FakeTelegram) -> None:
    config = make_config(CONFIG.replace("BASE_URL", fake_telegram.base_url))
    async with asyncio.timeout(30), open_deck(config):
        fake_telegram.user_says("/ask shell echo deploy", user=BOB)
        await fake_telegram.wait_until(lambda: _card(fake_telegram, BOB)[0])
        mid, text = _card(fake_telegram, BOB)
        assert f"telegram:{BOB} asks agent shell" in text
        assert "Ada" not in text.split("approvers:")[0]
        fake_telegram.press(
            _button(fake_telegram, BOB, mid, "Deny"), message_id=mid, chat=BOB, user=BOB
        )
        await fake_telegram.wait_until(
            lambda: (
                f"Denied by telegram:{BOB} at" in fake_telegram.messages[(BOB, mid)].get("text", "")
            )
        )


def test_a_name_is_optional_and_shown_beside_the_id() -> None:
    from bot.access import Access

    config = make_config(CONFIG.replace("BASE_URL", "http://127.0.0.1:1/bot"))
    access = Access(config.users, console_user="console:local")
    assert access.display(f"telegram:{ADA}") == f"Ada (telegram:{ADA})"
    assert access.display(f"telegram:{BOB}") == f"telegram:{BOB}"
    assert access.display("admin") == "admin"
