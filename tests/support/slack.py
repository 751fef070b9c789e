"""Slack's side of a test: signed events, commands and presses posted to the bot, and
a deck on the Slack transport against the fake Slack Web API (`tests/fakes/slack_server`)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from bot.app import open_deck
from bot.deck import Deck
from bot.transports.slack import SlackTransport
from tests.fakes.slack_server import (
    BOT_USER,
    FakeSlack,
    Message,
    action_body,
    command_body,
    event_body,
    sign,
)
from tests.support.config import make_config

CONFIG = """
[deck]
default_agent = "echo"
[[users]]
id = "slack:UADMIN"
role = "admin"
[[users]]
id = "slack:UOP"
role = "operator"
[[agents]]
name = "echo"
kind = "echo"
[[agents]]
name = "other"
kind = "echo"
[[agents]]
name = "shell"
kind = "command"
command = ["/bin/sh", "-c", "{input}"]
timeout = 20
approval = "always"
approvers = ["admin"]
[[agents]]
name = "slow"  # runs until the file its input names exists (a gate the test opens)
kind = "command"
command = ["/bin/sh", "-c", 'echo starting; until [ -e "$0" ]; do sleep 0.05; done; echo finished', "{input}"]
timeout = 20
[[agents]]
name = "big"
kind = "command"
command = ["seq", "1", "{input}"]
timeout = 20
[[bindings]]
chat = "slack:CBOUND"
agent = "other"
"""


class Slack:
    """Plays Slack's side: posts signed events, commands and presses to the bot at `url`."""

    def __init__(self, url: str, http: aiohttp.ClientSession, *, user: str = "UOP") -> None:
        self.url = url
        self.user = user
        self._http = http
        self._ids = itertools.count(1)
        self._ts = itertools.count(1)

    async def post(
        self, body: str, content_type: str, headers: dict[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        headers = {"Content-Type": content_type, **(headers or sign(body))}
        async with self._http.post(self.url, data=body, headers=headers) as resp:
            await resp.read()
            return resp

    async def event(
        self, event: dict[str, Any], *, event_id: str | None = None, retry: int | None = None
    ) -> aiohttp.ClientResponse:
        body = event_body(event, event_id=event_id or f"Ev{next(self._ids)}")
        headers = sign(body)
        if retry:
            headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        return await self.post(body, "application/json", headers)

    async def mention(
        self,
        text: str,
        *,
        user: str | None = None,
        channel: str = "C1",
        thread_ts: str | None = None,
        event_id: str | None = None,
        retry: int | None = None,
    ) -> str:
        """Mention the bot; return the message's ts (the thread of the answer)."""
        ts = f"1700000000.{next(self._ts):06d}"
        event = {
            "type": "app_mention",
            "user": user or self.user,
            "text": f"<@{BOT_USER}> {text}",
            "ts": ts,
            "channel": channel,
            "event_ts": ts,
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        resp = await self.event(event, event_id=event_id, retry=retry)
        assert resp.status == 200
        return ts

    async def command(
        self, text: str, *, user: str | None = None, channel: str = "C1", **kw: str
    ) -> aiohttp.ClientResponse:
        trigger = f"T{next(self._ids)}"
        body = command_body(text, user=user or self.user, channel=channel, trigger=trigger, **kw)
        return await self.post(body, "application/x-www-form-urlencoded")

    async def press(
        self, message: Message, label: str, *, user: str | None = None, trigger: str | None = None
    ) -> aiohttp.ClientResponse:
        button = next(b for b in message.buttons if b["text"]["text"] == label)
        trigger = trigger or f"T{next(self._ids)}"
        body = action_body(message, button, user=user or self.user, trigger=trigger)
        resp = await self.post(body, "application/x-www-form-urlencoded")
        assert resp.status == 200
        return resp


def slack_section(fake: FakeSlack, mode: str = "http", **extra: Any) -> dict[str, Any]:
    """The `[slack]` section of a deck that talks to `fake`."""
    return {"mode": mode, "port": 0, "base_url": fake.api_url, **extra}


@asynccontextmanager
async def slack_deck(
    fake: FakeSlack, config_text: str = CONFIG, **slack: Any
) -> AsyncIterator[tuple[Deck, Slack]]:
    """A deck on the Slack transport only, and Slack's side of it."""
    config = make_config(config_text, slack=slack_section(fake, **slack))
    async with (
        asyncio.timeout(60),
        open_deck(config) as (deck, transports),
        aiohttp.ClientSession() as http,
    ):
        (transport,) = transports
        assert isinstance(transport, SlackTransport)
        yield deck, Slack(transport.address, http)


def replies(fake: FakeSlack, channel: str, thread_ts: str) -> list[str]:
    """What the bot showed in a thread, oldest first."""
    return [m.shown for m in fake.in_thread(channel, thread_ts)]


def everything_slack_got(fake: FakeSlack) -> str:
    """Every Web API call's arguments, posted message, response-URL post and upload."""
    parts = [json.dumps(c.args, ensure_ascii=False, default=str) for c in fake.calls]
    parts += [str(c.args) for c in fake.calls]
    parts += [m.text + json.dumps(m.blocks, ensure_ascii=False) for m in fake.messages.values()]
    parts += [m.shown + "".join(m.history) for m in fake.messages.values()]
    parts += [json.dumps(r, ensure_ascii=False) for r in fake.responses]
    parts += [u.decode("utf-8", "replace") for u in fake.uploads.values()]
    return "\n".join(parts)
