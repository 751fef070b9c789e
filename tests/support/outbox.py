"""The durable outbox seen from a test: its rows, waiting for a row to reach a state, and
a deck on Telegram and/or Slack (the fakes) that delivers through it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from sqlmodel import select

from bot.app import open_deck
from bot.config import Config
from bot.deck import Deck
from storage.clock import FakeClock
from storage.models import OutboxMessage
from tests.fakes.slack_server import FakeSlack
from tests.fakes.telegram_server import FakeTelegram
from tests.support.config import make_config
from tests.support.slack import Slack
from tests.support.telegram import ADMIN
from tests.support.waiting import eventually

USERS = f"""
[deck]
default_agent = "echo"
admin_chat = "telegram:{ADMIN}"
[[users]]
id = "telegram:{ADMIN}"
role = "admin"
[[users]]
id = "slack:UOP"
role = "operator"
[[agents]]
name = "echo"
kind = "echo"
"""


def delivery_config(
    data_dir: Path, *, telegram: FakeTelegram | None, slack: FakeSlack | None
) -> Config:
    """A deck on the given fakes (Telegram reads `TG_TOKEN`), its admin chat on Telegram."""
    text = USERS.replace("[deck]", f'[deck]\ndata_dir = "{data_dir}"')
    if telegram is not None:
        text += f'[telegram]\ntoken = "env:TG_TOKEN"\nbase_url = "{telegram.base_url}"\n'
    sections: dict[str, Any] = {}
    if slack is not None:
        sections["slack"] = {"mode": "http", "port": 0, "base_url": slack.api_url}
    return make_config(text, **sections)


@contextlib.asynccontextmanager
async def deck_with_slack(
    config: Config, clock: FakeClock | None = None
) -> AsyncIterator[tuple[Deck, Slack]]:
    """A deck on the transports of `config`, one of them Slack, and Slack's side of it."""
    async with (
        asyncio.timeout(60),
        open_deck(config, clock=clock) as (deck, transports),
        aiohttp.ClientSession() as http,
    ):
        slack = next(t for t in transports if t.name == "slack")
        yield deck, Slack(slack.address, http)  # type: ignore[attr-defined]


async def outbox_rows(deck: Deck) -> list[OutboxMessage]:
    """Every outbox row, queued writes flushed first."""
    assert deck.writer is not None
    await deck.writer.flush()
    async with deck.db.session() as session:
        return list((await session.exec(select(OutboxMessage))).all())


async def wait_for_row(deck: Deck, state: str, needle: str = "") -> OutboxMessage:
    """The first outbox row in `state` whose payload holds `needle`, once there is one."""

    async def found() -> OutboxMessage | None:
        rows = await outbox_rows(deck)
        return next((r for r in rows if r.state == state and needle in str(r.payload)), None)

    return await eventually(found, timeout=10)


def posted(fake: FakeSlack, needle: str) -> list[str]:
    """What the bot showed in Slack that holds `needle`."""
    return [m.shown for m in fake.messages.values() if needle in m.shown]
