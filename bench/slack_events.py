"""Slack's side of a bench in HTTP mode: signed Events API POSTs in, the Web API out.

The fake Slack Web API (`tests.fakes.slack_server`) runs in this process and notes when
each message was posted; events are `app_mention`s from 50 people in 50 channels, each
POSTed on a connection of its own (as Slack does not promise to reuse one), so a
round-robin balancer in front spreads them. Used by `bench.team_bench`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import aiohttp

from tests.fakes.slack_server import BOT_USER, FakeSlack, Message, event_body, sign

CHATS = 50
AT_ONCE = 100  # events in flight at once (Slack's own pace is its business; ours is this)
WAIT_SECONDS = 120.0
T = TypeVar("T")


class SlackLoad:
    def __init__(self, fake: FakeSlack, http: aiohttp.ClientSession) -> None:
        self.fake = fake
        self._http = http
        self._ids = itertools.count(1)

    @classmethod
    async def start(cls) -> SlackLoad:
        connector = aiohttp.TCPConnector(limit=AT_ONCE, force_close=True)
        return cls(await FakeSlack().start(), aiohttp.ClientSession(connector=connector))

    async def stop(self) -> None:
        await self._http.close()
        await self.fake.stop()

    async def mention(self, url: str, text: str, chat: int) -> tuple[str, str, float]:
        """POST one signed mention; its channel, ts and when it was sent."""
        n = next(self._ids)
        channel, ts = f"C{chat:04d}", f"1700000000.{n:06d}"
        event = {
            "type": "app_mention",
            "user": f"U{2000 + chat}",
            "text": f"<@{BOT_USER}> {text}",
            "ts": ts,
            "channel": channel,
        }
        body = event_body(event, event_id=f"Ev{n:08d}")
        headers = {"Content-Type": "application/json", **sign(body)}
        sent = time.perf_counter()
        async with self._http.post(url, data=body, headers=headers) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"event {n} answered {response.status}")
        return channel, ts, sent

    async def answers(self, asked: list[tuple[str, str, float]], needle: str) -> list[Message]:
        """Wait until each mention has its answer (a reply in its thread holding `needle`);
        the first of each. Raises if one is answered twice (looked at a moment later)."""
        wanted = {(channel, ts) for channel, ts, _ in asked}
        deadline = time.monotonic() + WAIT_SECONDS
        while len(found := self._replies(wanted, needle)) < len(wanted):
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(found)} of {len(wanted)} mentions answered")
            await asyncio.sleep(0.02)
        return [replies[0] for replies in found.values()]

    def _replies(
        self, wanted: set[tuple[str, str]], needle: str
    ) -> dict[tuple[str, str], list[Message]]:
        found: dict[tuple[str, str], list[Message]] = {}
        for message in list(self.fake.messages.values()):
            where = (message.channel, message.thread_ts or "")
            if where in wanted and needle in message.shown:
                found.setdefault(where, []).append(message)
        return found

    async def answered_once(self, asked: list[tuple[str, str, float]], needle: str) -> list[float]:
        """Seconds from each mention to its answer; every one answered exactly once."""
        firsts = await self.answers(asked, needle)
        await asyncio.sleep(0.3)  # an answer posted twice would have arrived by now
        wanted = {(channel, ts) for channel, ts, _ in asked}
        twice = [k for k, replies in self._replies(wanted, needle).items() if len(replies) > 1]
        if twice:
            raise RuntimeError(f"{len(twice)} mentions answered more than once: {twice[:3]}")
        at = {(m.channel, m.thread_ts): m.at for m in firsts}
        return [at[(channel, ts)] - sent for channel, ts, sent in asked]

    async def warm_up(self, url: str, count: int, agent: str = "") -> None:
        prefix = f"@{agent} " if agent else ""
        asked = [
            await self.mention(url, f"{prefix}warm-up {n}", CHATS - 1 - n) for n in range(count)
        ]
        await self.answers(asked, "warm-up")

    async def burst(self, url: str, total: int) -> float:
        """`total` mentions from 50 chats at once; answered per second, first sent to last."""
        asked = await asyncio.gather(*(self.mention(url, f"m{n}", n % CHATS) for n in range(total)))
        firsts = await self.answers(asked, "echo: m")
        await self.answered_once(asked, "echo: m")
        return total / (max(m.at for m in firsts) - min(sent for _, _, sent in asked))

    async def one_by_one(self, url: str, count: int) -> list[float]:
        """One mention at a time, each once the last was answered; seconds to each answer."""
        asked: list[tuple[str, str, float]] = []
        for n in range(count):
            asked.append(await self.mention(url, f"q{n}", n % CHATS))
            await self.answers(asked[-1:], "echo: q")
        return await self.answered_once(asked, "echo: q")

    async def slow(self, url: str) -> float:
        """50 chats at once to the 1-second model: seconds until all are answered."""
        asked = await asyncio.gather(
            *(self.mention(url, f"@slow slow {n}", n) for n in range(CHATS))
        )
        firsts = await self.answers(asked, "echo: slow")
        return max(m.at for m in firsts) - min(sent for _, _, sent in asked)


@contextlib.contextmanager
def slack_load() -> Iterator[tuple[SlackLoad, Callable[[Coroutine[Any, Any, T]], T]]]:
    """A `SlackLoad` on an event loop of its own thread, and a way to run its coroutines
    from this (blocking) one: the bench waits for ports while the fake answers the bots."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="slack-load", daemon=True)
    thread.start()

    def run(coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    load = run(SlackLoad.start())
    try:
        yield load, run
    finally:
        run(load.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
