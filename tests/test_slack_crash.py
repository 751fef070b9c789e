"""kill -9 during a burst of Slack events (HTTP mode): nothing Slack got a 200 for is lost,
and Slack's retries never run anything twice.

First, while another writer holds the database, events are not acknowledged at all: the
200 waits for the inbox's commit, and gives up with a 500 (Slack sends it again) before
Slack's 3 s are out. They are stored and run once the database is free again.

A real `agentdeck run` on SQLite takes a stream of signed mentions, ten in flight at any
time, and is killed once a quarter of them are acknowledged. After the restart Slack sends every event again, as
retries (it would resend only the unanswered ones; the answered ones sent too must be
skipped). A command agent appends each mention's tag to a file: every tag runs once at
most, and each one either ran or (killed mid-run) was reported as cut short.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.slack_server import BOT_USER, FakeSlack, event_body, sign
from tests.support.chaos import BotProcess, write_script
from tests.support.network import free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow  # real agentdeck processes (started, killed, restarted)

EVENTS = 60
KILL_AFTER_ACKS = EVENTS // 4
IN_FLIGHT = 10  # events sent and not answered yet, at any time

CONFIG = """
[deck]
default_agent = "count"
rate_limit_per_minute = 0
[slack]
mode = "http"
base_url = "{api}"
listen = "127.0.0.1"
port = {port}
path = "/slack/events"
[[users]]
id = "slack:UOP"
role = "operator"
[[agents]]
name = "count"
kind = "command"
command = ["{script}", "{{input}}"]
timeout = 60
"""


class Burst:
    """The bot process, the events Slack sends it, and what came of them."""

    def __init__(self, tmp: Path, fake: FakeSlack) -> None:
        self.fake = fake
        script, self.count = write_script(tmp, 0.05)
        port = free_port()
        config = tmp / "deck.toml"
        config.write_text(CONFIG.format(api=fake.api_url, port=port, script=script))
        self.bot = BotProcess(tmp / "data", config, {})
        self.database = tmp / "data" / "agentdeck.db"
        self.url = f"http://127.0.0.1:{port}/slack/events"
        self.tags = [f"m{n:05d}" for n in range(EVENTS)]

    def body(self, tag: str) -> str:
        event = {
            "type": "app_mention",
            "user": "UOP",
            "text": f"<@{BOT_USER}> {tag}",
            "ts": f"1700000000.{tag[1:]}",
            "channel": "C1",
        }
        return event_body(event, event_id=f"Ev{tag}")

    async def post(self, http: aiohttp.ClientSession, tag: str, retry: int = 0) -> int:
        body = self.body(tag)
        headers = {"Content-Type": "application/json", **sign(body)}
        if retry:
            headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        async with http.post(self.url, data=body, headers=headers) as resp:
            await resp.read()
            return resp.status

    async def start(self, http: aiohttp.ClientSession) -> None:
        await self.bot.start()

        async def listening() -> bool:
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with http.get(self.url) as resp:
                    return resp.status == 405  # only POST is served there
            return False

        await eventually(listening, 60)

    async def send_then_kill(self, http: aiohttp.ClientSession) -> set[str]:
        """The events, IN_FLIGHT at a time; kill -9 once enough are acknowledged. The
        acknowledged ones."""
        acked: set[str] = set()
        enough = asyncio.Event()
        window = asyncio.Semaphore(IN_FLIGHT)

        async def send(tag: str) -> None:
            async with window:
                if self.bot.process is None or self.bot.process.returncode is not None:
                    return  # Slack would send it to the next process
                with contextlib.suppress(aiohttp.ClientError):
                    if await self.post(http, tag) == 200:
                        acked.add(tag)
                        if len(acked) >= KILL_AFTER_ACKS:
                            enough.set()

        sending = asyncio.gather(*(send(tag) for tag in self.tags))
        async with asyncio.timeout(60):
            await enough.wait()
        await self.bot.kill()
        await sending
        return set(acked)

    def stored(self) -> set[str]:
        """Tags in the inbox: what a restart will hand out, or knows it has handled."""
        with contextlib.closing(sqlite3.connect(self.database)) as db:
            keys = [key for (key,) in db.execute("SELECT key FROM inbox")]
        return {key.removeprefix("slack:Ev") for key in keys if key.startswith("slack:Ev")}

    def executions(self) -> Counter[str]:
        return Counter(self.count.read_text().split() if self.count.exists() else [])

    def reported(self) -> set[str]:
        """Tags whose run the restart reported as cut short."""
        shown = [m.shown for m in self.fake.messages.values()]
        return {t for t in self.tags for s in shown if "interrupted by a restart" in s and t in s}


@pytest.fixture
async def burst(tmp_path: Path, fake_slack: FakeSlack) -> AsyncIterator[Burst]:
    deck = Burst(tmp_path, fake_slack)
    try:
        yield deck
    finally:
        await deck.bot.kill_if_running()


async def test_acknowledged_events_survive_kill_9_and_retries_run_once(burst: Burst) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        await burst.start(http)
        held = burst.tags[:IN_FLIGHT]
        holder = sqlite3.connect(burst.database, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")  # another writer holds the database
            statuses = await asyncio.gather(*(burst.post(http, tag) for tag in held))
        finally:
            holder.close()
        assert set(statuses) == {500}  # not stored in time: not acknowledged
        await eventually(lambda: set(burst.executions()) >= set(held), 30)  # stored since

        burst.tags = burst.tags[IN_FLIGHT:]
        acked = await burst.send_then_kill(http)
        assert len(acked) >= KILL_AFTER_ACKS
        assert len(acked) < len(burst.tags)  # the kill came in the middle of the burst
        assert acked <= burst.stored()  # every acknowledged event was in the inbox

        await burst.start(http)
        statuses = await asyncio.gather(*(burst.post(http, tag, retry=1) for tag in burst.tags))
        assert set(statuses) == {200}

        def accounted() -> set[str]:
            return set(burst.executions()) | burst.reported()

        await eventually(lambda: accounted() >= set(burst.tags), 60)
        await burst.bot.stop()

    executions = burst.executions()
    assert executions.most_common(1)[0][1] == 1  # nothing ran twice
    assert acked <= accounted()  # nothing acknowledged was lost
