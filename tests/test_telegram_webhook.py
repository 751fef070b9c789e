"""Webhook mode: Telegram POSTs updates with the secret token header; a wrong one gets 403."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.app import open_deck
from bot.transports.telegram.receive import SECRET_HEADER
from tests.fakes.telegram_server import FakeTelegram
from tests.support.config import make_config
from tests.support.network import free_port
from tests.support.telegram import ADMIN


@pytest.fixture
async def fake_telegram(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeTelegram]:
    server = await FakeTelegram().start()
    monkeypatch.setenv("TG_TOKEN", server.token)
    monkeypatch.setenv("TG_WEBHOOK_SECRET", "s3cret-token")
    yield server
    await server.stop()


def webhook_config(fake: FakeTelegram, port: int) -> str:
    return f"""
[deck]
default_agent = "echo"
[telegram]
token = "env:TG_TOKEN"
base_url = "{fake.base_url}"
mode = "webhook"
webhook_url = "http://127.0.0.1:{port}/hook"
listen = "127.0.0.1"
port = {port}
path = "/hook"
secret_token = "env:TG_WEBHOOK_SECRET"
[[users]]
id = "telegram:{ADMIN}"
role = "admin"
[[agents]]
name = "echo"
kind = "echo"
"""


async def test_webhook_with_right_and_wrong_secret(fake_telegram: FakeTelegram) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    config = make_config(webhook_config(fake_telegram, port))
    async with asyncio.timeout(20), open_deck(config) as (deck, _):
        assert fake_telegram.webhook == (url, "s3cret-token")
        fake_telegram.user_says("through the hook", user=ADMIN)
        (reply,) = await fake_telegram.wait_for("sendMessage")
        assert reply.params["text"] == "<b>echo</b>: through the hook"

        forged = {
            "update_id": 999,
            "message": {
                "message_id": 1,
                "date": 0,
                "chat": {"id": ADMIN, "type": "private"},
                "from": {"id": ADMIN, "is_bot": False, "first_name": "M"},
                "text": "forged",
            },
        }
        assert await fake_telegram.post_update(forged, url=url, secret="wrong") == 403
        assert await fake_telegram.post_update(forged, url=url, secret="") == 403
        await deck.tasks.drain()
    assert len(fake_telegram.calls_to("sendMessage")) == 1
    assert not fake_telegram.calls_to("getUpdates"), "webhook mode never polls"


async def test_webhook_redelivery_is_handled_once(fake_telegram: FakeTelegram) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    config = make_config(webhook_config(fake_telegram, port))
    async with asyncio.timeout(20), open_deck(config) as (deck, _):
        update_id = fake_telegram.user_says("once", user=ADMIN)
        await fake_telegram.wait_for("sendMessage")
        (queued,) = [q for q in fake_telegram.history if q.update_id == update_id]
        assert await fake_telegram.post_update(queued.update, url=url, secret="s3cret-token") == 200
        await deck.tasks.drain()
    assert len(fake_telegram.calls_to("sendMessage")) == 1


def message_update(update_id: int, **changes: Any) -> dict[str, Any]:
    message = {
        "message_id": 7,
        "date": 0,
        "chat": {"id": ADMIN, "type": "private"},
        "from": {"id": ADMIN, "is_bot": False, "first_name": "M"},
        "text": "hello",
    }
    return {"update_id": update_id, "message": message | changes}


# Bodies Telegram never sends; each comes with the right secret token.
MALFORMED = [
    b"",
    b"not json",
    b"\xff\xfe",
    b"[]",
    b"null",
    b'"an update"',
    b"42",
    b"[" * 50_000,
    b"{}",
    b'{"update_id": "x"}',
    b'{"update_id": 5, "message": "a string"}',
    b'{"update_id": 6, "message": []}',
    b'{"update_id": 7, "message": {"chat": "nope"}}',
    b'{"update_id": 8, "callback_query": 3}',
    json.dumps(message_update(9, text=5)).encode(),
    json.dumps(message_update(10, chat={"id": "x", "type": "private"})).encode(),
    json.dumps(message_update(11, **{"from": "someone"})).encode(),
]


async def test_malformed_updates_get_400_and_no_traceback(
    fake_telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    """With the right secret, junk is answered 400 with one log line; the bot goes on."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    config = make_config(webhook_config(fake_telegram, port))
    async with asyncio.timeout(30), open_deck(config) as (deck, _), aiohttp.ClientSession() as http:
        headers = {SECRET_HEADER: "s3cret-token", "Content-Type": "application/json"}
        statuses = []
        for body in MALFORMED:
            async with http.post(url, data=body, headers=headers) as response:
                statuses.append(response.status)
        async with http.post(url, data=b"[]", headers={SECRET_HEADER: "wrong"}) as response:
            assert response.status == 403  # the secret is checked before the body is read
        assert statuses == [400] * len(MALFORMED), list(zip(MALFORMED, statuses, strict=True))
        fake_telegram.user_says("still here", user=ADMIN)
        (reply,) = await fake_telegram.wait_for("sendMessage")
        assert reply.params["text"] == "<b>echo</b>: still here"
        await deck.tasks.drain()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    refused = [r for r in caplog.records if "not an update" in r.getMessage()]
    assert len(refused) == len(MALFORMED)
    assert all("\n" not in r.getMessage() for r in refused)
