"""`Inbound.quick`: a private text message read straight from its JSON is the `Incoming`
that python-telegram-bot's parse and `Inbound.convert` make of it; anything else is left
to them (None). The webhook reads its bodies the same way (`read_update`)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from telegram import Bot, Update

from bot.transports.telegram.inbound import Inbound, TelegramBotIdentity, UnreadableUpdate
from bot.transports.telegram.receive import read_update
from bot.types import Incoming

ME = TelegramBotIdentity(id=99, username="deck_bot")
USER = {"id": 2001, "is_bot": False, "first_name": "Ada"}


def update(**message: Any) -> dict[str, Any]:
    base = {"message_id": 7, "date": 1700000000, "chat": {"id": 2001, "type": "private"}}
    return {"update_id": 41, "message": {**base, "from": USER, "text": "hello", **message}}


TAKEN = [
    update(),
    update(text="/status now", entities=[{"type": "bot_command", "offset": 0, "length": 7}]),
    update(text="héllo *world*", chat={"id": 2001, "type": "private", "first_name": "Ada"}),
]
LEFT = [
    update(chat={"id": -100, "type": "group", "title": "g"}),  # a group: mentions, replies
    update(reply_to_message={"message_id": 1, "date": 0, "chat": {"id": 2001, "type": "private"}}),
    update(message_thread_id=3, is_topic_message=True),
    update(**{"from": {"id": 5, "is_bot": True, "first_name": "B"}}),
    update(text=""),
    update(text=5),
    update(message_id="7"),
    update(entities=[{"type": "bold", "offset": "0", "length": 1}]),
    update(photo=[{"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}]),
    {"update_id": 41, "callback_query": {"id": "q", "from": USER, "chat_instance": "c"}},
    {"update_id": True, "message": update()["message"]},
    {"update_id": 41, "message": "text"},
]


@pytest.mark.parametrize("data", TAKEN)
def test_a_plain_private_message_reads_as_the_full_parse_reads_it(data: dict[str, Any]) -> None:
    inbound = Inbound(ME)
    quick = inbound.quick(copy.deepcopy(data))
    assert quick is not None
    assert quick == inbound.convert(Update.de_json(copy.deepcopy(data), None))


@pytest.mark.parametrize("data", LEFT)
def test_anything_else_is_left_to_the_full_parse(data: dict[str, Any]) -> None:
    assert Inbound(ME).quick(data) is None


@pytest.mark.parametrize("data", TAKEN + LEFT[:4])
def test_a_webhook_body_reads_as_the_full_parse_reads_it(data: dict[str, Any]) -> None:
    inbound, bot = Inbound(ME), Bot("1:fake")
    body = json.dumps(data).encode()
    fast = read_update(body, bot, inbound.quick)
    full = read_update(body, bot)
    assert isinstance(full, Update)
    assert isinstance(fast, Incoming) == (data in TAKEN)
    assert (fast if isinstance(fast, Incoming) else inbound.convert(fast)) == inbound.convert(full)


@pytest.mark.parametrize(
    "body",
    [b"{", b"[]", b'{"message": {}}', json.dumps(update(message_id="7", chat="x")).encode()],
)
def test_an_unreadable_webhook_body_is_refused_with_the_fast_path_on(body: bytes) -> None:
    with pytest.raises(UnreadableUpdate):
        read_update(body, Bot("1:fake"), Inbound(ME).quick)
