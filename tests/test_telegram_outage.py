"""A Telegram outage at run time: Slack goes on, /status shows it, Telegram comes back alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from bot import links
from tests.fakes.slack_server import FakeSlack
from tests.fakes.telegram_server import TOKEN, FakeTelegram
from tests.test_outbox_delivery import ADMIN, config_for, deck_with_slack


class FailingTelegram(FakeTelegram):
    """The fake Bot API behind a gateway that can go down: open calls are cut, and every
    call is a 502 until it is back."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self._open: dict[int, web.Request] = {}

    def go_down(self) -> None:
        self.down = True
        for request in self._open.values():  # the long poll in progress, cut as by a gateway
            if request.transport is not None:
                request.transport.close()

    async def _dispatch(self, request: web.Request) -> web.Response:
        if self.down:
            return web.Response(status=502, text="Bad Gateway")
        self._open[id(request)] = request
        try:
            return await super()._dispatch(request)
        finally:
            self._open.pop(id(request), None)


@pytest.fixture
async def failing_telegram(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FailingTelegram]:
    server = await FailingTelegram().start()
    monkeypatch.setenv("TG_TOKEN", TOKEN)
    yield server
    await server.stop()


async def test_a_telegram_outage_leaves_slack_alone_and_telegram_recovers(
    failing_telegram: FailingTelegram,
    fake_slack: FakeSlack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(links, "RETRY_FIRST_SECONDS", 0.2)
    telegram = failing_telegram
    config = config_for(tmp_path, telegram=telegram, slack=fake_slack)
    async with deck_with_slack(config) as (deck, slack):
        telegram.user_says("before", user=ADMIN)
        await telegram.wait_until(lambda: "echo: before" in telegram.sent_texts(ADMIN))

        telegram.go_down()  # polling fails from now on
        assert deck.links is not None
        async with asyncio.timeout(20):
            while deck.links.is_up("telegram"):
                await asyncio.sleep(0.05)
        await slack.mention("/status")
        status = (await fake_slack.wait_for_text("telegram retrying since")).shown
        assert "slack up" in status
        assert "Bad Gateway" in status

        telegram.down = False
        async with asyncio.timeout(20):
            while not deck.links.is_up("telegram"):
                await asyncio.sleep(0.05)
        telegram.user_says("after", user=ADMIN)
        await telegram.wait_until(lambda: "echo: after" in telegram.sent_texts(ADMIN), timeout=40)
