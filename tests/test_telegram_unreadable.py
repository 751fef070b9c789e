"""An update the bot cannot read, in a getUpdates batch, costs that update only: it is
skipped (the offset moves past it), audited once, logged in one line; the others of the
batch are handled. The real transport polling the fake Bot API."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.fakes.telegram_server import FakeTelegram
from tests.support.decks import audit_actions, running
from tests.support.telegram import ADMIN, config_for, texts_to

JUNK: list[dict[str, Any]] = [
    {"message": "a string"},  # python-telegram-bot cannot parse it
    {"message": {"message_id": "x", "date": "no", "chat": 5}},
    {  # parsed, but not what the Bot API sends: a number as text
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": ADMIN, "type": "private"},
            "from": {"id": ADMIN, "is_bot": False, "first_name": "A"},
            "text": 5,
        }
    },
]


async def test_one_malformed_update_does_not_drop_or_wedge_its_batch(
    fake_telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(config_for(fake_telegram)) as deck:
        await fake_telegram.wait_until(lambda: fake_telegram.first_poll_at is not None)
        fake_telegram.user_says("before", user=ADMIN)  # one batch: queued in one go
        junk_ids = [fake_telegram.raw_update(body) for body in JUNK]
        fake_telegram.user_says("after", user=ADMIN)
        await fake_telegram.wait_for("sendMessage", 2, timeout=10)
        fake_telegram.user_says("later", user=ADMIN)
        await fake_telegram.wait_for("sendMessage", 3, timeout=10)
        await deck.tasks.drain()
        actions = await audit_actions(deck)
    assert texts_to(fake_telegram, ADMIN) == [
        "<b>echo</b>: before",
        "<b>echo</b>: after",
        "<b>echo</b>: later",
    ]
    assert actions.count("refused.unreadable") == len(JUNK)
    polls = [c for c in fake_telegram.calls if c.method == "getUpdates"]
    assert int(polls[-1].params["offset"]) > max(junk_ids)  # confirmed: never sent again
    lines = [r for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(lines) == len(JUNK)
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in lines)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
