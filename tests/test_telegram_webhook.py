"""Webhook mode: Telegram POSTs updates with the secret token header; a wrong one gets 403."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from bot.app import open_deck
from tests.conftest import make_config
from tests.fakes.telegram_server import FakeTelegram

ADMIN = 1001


@pytest.fixture
async def fake_telegram(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeTelegram]:
    server = await FakeTelegram().start()
    monkeypatch.setenv("TG_TOKEN", server.token)
    monkeypatch.setenv("TG_WEBHOOK_SECRET", "s3cret-token")
    yield server
    await server.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
