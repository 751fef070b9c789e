"""The one-time dashboard sign-in link is never stored: the outbox keeps a placeholder.

The attack: the `/dashboard` reply, link and token included, sat in the `outbox` table
(and was shown to the admin chat when its delivery was in doubt); whoever could read
the database could sign in as that operator. Now the link is made at each delivery
attempt: the row never holds one, and a retried send brings a new, working link.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlmodel import select

from bot.app import open_deck
from bot.deck import Deck
from bot.delivery.direct import NOT_MINTED, Direct, minted_link
from bot.delivery.postman import Postman
from bot.text import rich
from bot.transports.telegram import limits
from bot.types import Outgoing
from storage.clock import FakeClock
from storage.models import OutboxMessage
from tests.fakes.chat import ChatRecorder
from tests.fakes.telegram_server import FakeTelegram
from tests.support.config import make_config
from tests.support.dashkit import redeem
from tests.support.telegram import ADMIN

LINK = re.compile(r"http://127\.0\.0\.1:\d+/signin\?t=([A-Za-z0-9_\-.%]+)")
CONFIG = f"""
[deck]
default_agent = "echo"
[telegram]
token = "env:TG_TOKEN"
base_url = "BASE_URL"
[[users]]
id = "telegram:{ADMIN}"
role = "admin"
[[agents]]
name = "echo"
kind = "echo"
[dashboard]
enabled = true
port = 0
"""


def links_sent(fake: FakeTelegram) -> list[str]:
    return [m[0] for t in fake.sent_texts(ADMIN) if (m := LINK.search(t))]


async def outbox_payloads(deck: Deck) -> str:
    await deck.runner.flush()
    async with deck.db.session() as session:
        rows = (await session.exec(select(OutboxMessage))).all()
    assert rows
    return " ".join(repr(row.payload) for row in rows)


async def signs_in(link: str) -> int:
    """Redeem the link as its receiver would; 303 (to the overview) when it works."""
    base = link.partition("/signin")[0]
    async with aiohttp.ClientSession(base, cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        return (await redeem(client, link)).status


async def test_the_sign_in_link_is_not_kept_in_the_outbox(
    fake_telegram: FakeTelegram, data_dir: Path
) -> None:
    config = make_config(CONFIG.replace("BASE_URL", fake_telegram.base_url))
    async with asyncio.timeout(30), open_deck(config) as (deck, _):
        fake_telegram.user_says("/dashboard", user=ADMIN)
        await fake_telegram.wait_until(lambda: bool(links_sent(fake_telegram)))
        (link,) = links_sent(fake_telegram)
        token = LINK.search(link)[1]  # type: ignore[index]
        stored = await outbox_payloads(deck)
        assert "works once" in stored  # the reply is kept, as every reply is
        assert token[:20] not in stored
        assert "/signin" not in stored
        await deck.runner.flush()
        for path in data_dir.glob("agentdeck.db*"):
            assert token[:20].encode() not in path.read_bytes(), path.name
        assert await signs_in(link) == 303  # what the user got works


async def test_a_retried_send_brings_a_new_working_link(
    fake_telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "FLOOD_ATTEMPTS", 1)  # a 429 goes to the outbox at once
    clock = FakeClock(datetime.now(UTC))
    config = make_config(CONFIG.replace("BASE_URL", fake_telegram.base_url))
    async with asyncio.timeout(30), open_deck(config, clock=clock) as (deck, _):
        fake_telegram.fail_next("sendMessage", status=429, retry_after=1)
        fake_telegram.user_says("/dashboard", user=ADMIN)
        await fake_telegram.wait_until(lambda: any(c.status == 429 for c in fake_telegram.calls))
        await deck.tasks.drain()
        assert links_sent(fake_telegram) == []
        clock.advance(timedelta(seconds=10))  # past the outbox's first pause
        assert deck.outbox is not None
        await deck.outbox.pump()
        (link,) = links_sent(fake_telegram)
        assert await signs_in(link) == 303
        (refused,) = [c for c in fake_telegram.calls if c.status == 429]
        assert link not in str(refused.params["text"])  # made anew for this attempt
        stored = await outbox_payloads(deck)
        assert "/signin" not in stored


async def test_a_placeholder_is_minted_per_delivery_or_says_it_cannot_be() -> None:
    chat = ChatRecorder()
    postman = Postman(Direct([chat]))  # no outbox: sent at once
    message = Outgoing("test:chat", rich("go: ", minted_link("signin", "test:ada")))
    await postman.send(message)  # no dashboard in this process
    assert chat.posted[-1].text == f"go: {NOT_MINTED}"
    made = iter(["https://deck.example.org/signin?t=1", "https://deck.example.org/signin?t=2"])
    postman.mint("signin", lambda user, where: f"{next(made)}&for={user}@{where}")
    await postman.deliver(message)
    await postman.deliver(message)
    links = [span.url for posted in chat.posted[1:] for span in posted.message.text if span.url]
    assert links == [
        "https://deck.example.org/signin?t=1&for=test:ada@test:chat",
        "https://deck.example.org/signin?t=2&for=test:ada@test:chat",
    ]
