"""A Telegram outage at run time: Slack and the scheduler go on, /status shows it, and
Telegram comes back by itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from sqlmodel import col, select

from bot.deck import Deck
from bot.delivery import transport_links as links
from storage.models import Run
from tests.fakes.slack_server import FakeSlack
from tests.fakes.telegram_server import TOKEN, FakeTelegram
from tests.support.outbox import deck_with_slack, delivery_config
from tests.support.telegram import ADMIN
from tests.support.waiting import eventually


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
    config = delivery_config(tmp_path, telegram=telegram, slack=fake_slack)
    async with deck_with_slack(config) as (deck, slack):
        telegram.user_says("before", user=ADMIN)
        await telegram.wait_until(lambda: "echo: before" in telegram.sent_texts(ADMIN))
        telegram.user_says("/every 1s echo tick", user=ADMIN)  # reports into this chat
        await telegram.wait_until(lambda: _job_reports(telegram), timeout=10)

        telegram.go_down()  # polling fails from now on
        assert deck.links is not None
        await eventually(lambda: not deck.links.is_up("telegram"), timeout=20)
        await slack.mention("/status")
        status = (await fake_slack.wait_for_text("telegram retrying since")).shown
        assert "slack up" in status
        assert "Bad Gateway" in status
        fired = await _job_runs(deck)
        # The scheduler goes on firing meanwhile.
        await eventually(lambda: _job_runs_reach(deck, fired + 2), timeout=10, step=0.2)
        reported = len(_job_reports(telegram))

        telegram.down = False
        await eventually(lambda: deck.links.is_up("telegram"), timeout=20)
        telegram.user_says("after", user=ADMIN)
        await telegram.wait_until(lambda: "echo: after" in telegram.sent_texts(ADMIN), timeout=40)
        # The reports of the runs that fired during the outage waited, and arrive now.
        reports = await eventually(lambda: _reports_after(telegram, reported, 2), timeout=20)
        assert all(report.endswith("echo: tick") for report in reports), reports


def _reports_after(telegram: FakeTelegram, seen: int, count: int) -> list[str]:
    """The job reports after the first `seen`, once there are `count` of them."""
    later = _job_reports(telegram)[seen:]
    return later if len(later) >= count else []


def _job_reports(telegram: FakeTelegram) -> list[str]:
    return [t for t in telegram.sent_texts(ADMIN) if "every 1s" in t and t.startswith("Job ")]


async def _job_runs_reach(deck: Deck, count: int) -> bool:
    return await _job_runs(deck) >= count


async def _job_runs(deck: Deck) -> int:
    await deck.runner.flush()
    async with deck.db.session() as session:
        runs = (await session.exec(select(Run).where(col(Run.job_id).is_not(None)))).all()
    return len(runs)
