"""kill -9 around a webhook delivery: after the restart nothing runs twice.

A real `agentdeck run` on SQLite, polling the fake Telegram; the trigger's agent is a
command that appends its input to a file (the count of runs) and then sleeps, so the
bot can be killed while the run it started goes on. The sender then retries the
delivery, as senders do when they are unsure it arrived.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlmodel import select

from storage.clock import SystemClock
from storage.db import Database, sqlite_url
from storage.deliveries import Deliveries
from storage.models import AuditEvent, DeliveryState, TriggerDelivery
from tests.fakes.telegram_server import FakeTelegram
from tests.support.chaos import BotProcess
from tests.support.network import free_port
from tests.support.triggers import HOOK_SECRET, github, post
from tests.support.waiting import eventually as until

ADMIN = 1001
SCRIPT = """#!/bin/sh
echo "$1" >> "{count}"
if [ ! -e "{mark}" ]; then touch "{mark}"; sleep 60; fi
echo "done $1"
"""
BODY = json.dumps({"issue": {"title": "db1 down", "number": 7}}).encode()


class Hooked:
    """The bot, its files, the fake Telegram it polls, and its trigger port."""

    def __init__(self, tmp: Path, fake: FakeTelegram) -> None:
        self.fake = fake
        self.count = tmp / "count.txt"
        self.mark = tmp / "mark"
        self.port = free_port()
        script = tmp / "triage.sh"
        script.write_text(SCRIPT.format(count=self.count, mark=self.mark))
        script.chmod(0o755)
        config = tmp / "deck.toml"
        config.write_text(f"""
[deck]
admin_chat = "telegram:{ADMIN}"
[telegram]
token = "env:TG_TOKEN"
base_url = "{fake.base_url}"
[webhooks]
port = {self.port}
[[users]]
id = "telegram:{ADMIN}"
role = "admin"
[[agents]]
name = "triage"
kind = "command"
command = ["{script}", "{{input}}"]
timeout = 120
[[triggers]]
name = "github"
path = "/hooks/github"
verify = "hmac_sha256"
secret = "env:HOOK_SECRET"
agent = "triage"
input = "Triage: {{issue.title}}"
report = "telegram:{ADMIN}"
""")
        env = {"TG_TOKEN": fake.token, "HOOK_SECRET": HOOK_SECRET}
        self.bot = BotProcess(tmp / "data", config, env)
        self.url = sqlite_url(tmp / "data")

    async def start(self) -> None:
        self.fake.first_poll_at = None
        await self.bot.start()
        await until(lambda: self.fake.first_poll_at is not None, 60)

    def runs(self) -> list[str]:
        return self.count.read_text().splitlines() if self.count.exists() else []

    async def deliver(self, delivery: str) -> tuple[int, dict[str, object]]:
        return await post(self.port, "/hooks/github", BODY, github(BODY, delivery))

    async def audit(self) -> list[str]:
        async with Database(self.url) as db, db.session() as session:
            return [event.action for event in (await session.exec(select(AuditEvent))).all()]

    def told(self, text: str) -> bool:
        return any(text in t for t in self.fake.sent_texts(ADMIN))


@pytest.fixture
async def hooked(tmp_path: Path) -> AsyncIterator[Hooked]:
    fake = await FakeTelegram().start()
    deck = Hooked(tmp_path, fake)
    try:
        yield deck
    finally:
        await deck.bot.kill_if_running()
        await fake.stop()


@pytest.mark.slow
async def test_killed_while_the_run_runs_the_retry_runs_nothing(hooked: Hooked) -> None:
    await hooked.start()
    status, answer = await hooked.deliver("gh-1")
    assert (status, answer["status"]) == (202, "accepted")
    await until(lambda: hooked.runs() == ["Triage: db1 down"], 20)
    await hooked.bot.kill()  # the delivery and its run are stored; the run is cut

    await hooked.start()
    await until(lambda: hooked.told("interrupted by a restart"), 20)
    status, answer = await hooked.deliver("gh-1")  # the sender retries
    assert (status, answer["status"]) == (202, "already received")
    assert await hooked.bot.stop() == 0
    assert hooked.runs() == ["Triage: db1 down"]
    actions = await hooked.audit()
    assert actions.count("trigger.received") == 1
    assert "trigger.repeated" in actions
    assert "run.interrupted" in actions


@pytest.mark.slow
async def test_a_delivery_stored_but_not_started_runs_once_after_the_restart(
    hooked: Hooked,
) -> None:
    """The state a kill -9 leaves between storing a delivery and starting its run: the
    row is `received`. The next start runs it, once; the sender's retry runs nothing."""
    hooked.mark.touch()  # no sleeping: the run ends
    async with Database(hooked.url) as db:
        stored = Deliveries(db=db, clock=SystemClock())
        assert await stored.take("github", "gh-2", run_id="a" * 32, text="Triage: db1 down")
    await hooked.start()
    await until(lambda: hooked.told("done Triage: db1 down"), 20)
    status, answer = await hooked.deliver("gh-2")
    assert (status, answer["status"]) == (202, "already received")
    assert await hooked.bot.stop() == 0

    await hooked.start()  # and a second restart finds nothing left to start
    assert await hooked.bot.stop() == 0
    assert hooked.runs() == ["Triage: db1 down"]
    async with Database(hooked.url) as db, db.session() as session:
        (row,) = (await session.exec(select(TriggerDelivery))).all()
    assert (row.state, row.run_id) == (DeliveryState.STARTED, "a" * 32)


@pytest.mark.slow
async def test_a_retry_during_the_run_is_answered_at_once(hooked: Hooked) -> None:
    """202 comes before the run's work: a sender's timeout never sees a long run."""
    await hooked.start()
    assert (await hooked.deliver("gh-3"))[0] == 202
    await until(lambda: hooked.runs() == ["Triage: db1 down"], 20)
    # The run sleeps now; the answer to a retry does not wait for it.
    async with asyncio.timeout(10):
        assert (await hooked.deliver("gh-3"))[1]["status"] == "already received"
    await hooked.bot.kill()
