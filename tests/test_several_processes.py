"""Two real `agentdeck run` processes on one PostgreSQL database, behind a round-robin.

Telegram (webhook mode) and Slack (HTTP mode) reach the processes in turn through
`tests.fakes.round_robin`. Each update is handled once wherever it lands, also when
it comes again to the other process; an approval asked through one process and
pressed on the other resumes the run there; one process runs the scheduler.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from sqlmodel import select

from storage.db import Database
from storage.models import Run, RunState
from tests.fakes.round_robin import RoundRobin
from tests.fakes.slack_server import (
    APP_TOKEN,
    BOT_TOKEN,
    SIGNING_SECRET,
    FakeSlack,
    Message,
)
from tests.fakes.telegram_server import FakeTelegram
from tests.support.cluster import fire_holders, inbox_owners, pid_of, two_processes
from tests.support.network import free_port
from tests.support.slack import Slack
from tests.support.telegram import ADMIN
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow  # real agentdeck processes (started, killed, restarted)

SHELL = """
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
"""
DECK = """
[deck]
database_url = "{url}"
default_agent = "echo"
process_heartbeat_seconds = 0.5
process_stale_seconds = 3
[scheduler]
takeover_seconds = 0.3
heartbeat_seconds = 0.5
sync_seconds = 0.3
"""


@pytest.fixture
async def balancer() -> AsyncIterator[RoundRobin]:
    ports = [free_port(), free_port()]
    proxy = await RoundRobin(ports).start()
    yield proxy
    await proxy.stop()


async def finished_run(db: Database, agent: str) -> Run:
    """The agent's one run, once its end is written (run rows are written behind)."""

    async def ended() -> Run | None:
        async with db.session() as session:
            (run,) = (await session.exec(select(Run).where(Run.agent == agent))).all()
        return run if run.status not in (RunState.RUNNING, RunState.WAITING) else None

    return await eventually(ended, step=0.1)


# -- Telegram, webhook mode -------------------------------------------------------------


def telegram_config(url: str, fake: FakeTelegram, proxy: RoundRobin, port: int) -> str:
    # No secret_token: both processes must derive the same one from the bot token.
    return (
        DECK.format(url=url)
        + f"""
[telegram]
token = "env:TG_TOKEN"
base_url = "{fake.base_url}"
mode = "webhook"
webhook_url = "{proxy.url}/hook"
listen = "127.0.0.1"
port = {port}
path = "/hook"
[[users]]
id = "telegram:{ADMIN}"
role = "admin"
[[jobs]]
name = "tick"
agent = "echo"
input = "tick"
every = "1s"
report_to = "telegram:{ADMIN}"
"""
        + SHELL
    )


async def test_telegram_webhook_on_two_processes(
    tmp_path: Path, pg_url: str, balancer: RoundRobin, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = await FakeTelegram(connection_per_update=True).start()
    monkeypatch.setenv("TG_TOKEN", fake.token)
    ports = (balancer.backends[0], balancer.backends[1])
    configs = (
        telegram_config(pg_url, fake, balancer, ports[0]),
        telegram_config(pg_url, fake, balancer, ports[1]),
    )
    try:
        async with (
            asyncio.timeout(90),
            two_processes(tmp_path, configs, ports) as (one, two),
            Database(pg_url) as db,
        ):
            await fake.wait_for("setWebhook", count=2, timeout=20)
            pids = {one.process.pid, two.process.pid}
            await _every_update_once(fake, balancer, db, pids)
            approval = await _approval_pressed_on_the_other_process(fake, db)
            assert approval.asked_on != approval.pressed_on
            # Resumed where it was pressed, and its result shown once.
            assert (approval.state, approval.ended_on, approval.results) == (
                RunState.DONE,
                approval.pressed_on,
                1,
            )
            holders = await fire_holders(db)
            assert len(holders) == 1  # the scheduler runs on one process
            assert holders <= pids
    finally:
        await fake.stop()


def _texts(fake: FakeTelegram, needle: str) -> list[str]:
    return [text for text in fake.sent_texts(ADMIN) if needle in text]


async def _every_update_once(
    fake: FakeTelegram, proxy: RoundRobin, db: Database, pids: set[int]
) -> None:
    said = [fake.user_says(f"hello {n}", user=ADMIN) for n in range(4)]
    await fake.wait_until(lambda: all(_texts(fake, f"echo: hello {n}") for n in range(4)))
    owners = await inbox_owners(db)
    assert {owners[f"telegram:{update_id}"] for update_id in said} == pids  # both took some

    # Telegram sends an update again when it missed the answer: each one, to both processes.
    url, secret = f"{proxy.url}/hook", _webhook_secret(fake)
    for queued in [q for q in fake.history if q.update_id in said]:
        for _ in range(2):
            assert await fake.post_update(queued.update, url=url, secret=secret) == 200
    # A message after the redeliveries on each process: its chat's work runs in order, so
    # once both answers are out, a duplicate would have been sent before them.
    for n in (1, 2):
        fake.user_says(f"barrier {n}", user=ADMIN)
    await fake.wait_until(lambda: all(_texts(fake, f"barrier {n}") for n in (1, 2)), timeout=10)
    for n in range(4):
        assert len(_texts(fake, f"echo: hello {n}")) == 1


def _webhook_secret(fake: FakeTelegram) -> str:
    assert fake.webhook is not None
    return fake.webhook[1]


@dataclass(frozen=True)
class CrossApproval:
    """An approval asked through one process and pressed on the other: where each went."""

    asked_on: int  # the pid that took the message asking
    pressed_on: int  # the pid that took the press
    ended_on: int  # the pid whose run finished the approved work
    state: RunState
    results: int  # how often the result was shown


async def _approval_pressed_on_the_other_process(fake: FakeTelegram, db: Database) -> CrossApproval:
    asked = fake.user_says("/ask shell echo approved-$((40+2))", user=ADMIN)
    await fake.wait_until(lambda: bool(_texts(fake, "Approval needed")), timeout=10)
    ((chat, message_id),) = [
        key for key, m in fake.messages.items() if "Approval needed" in m.get("text", "")
    ]
    buttons = {
        b["text"]: b["callback_data"]
        for row in fake.messages[(chat, message_id)]["reply_markup"]["inline_keyboard"]
        for b in row
    }
    fake.press(buttons["Approve"], message_id=message_id, chat=chat, user=ADMIN)
    await fake.wait_until(lambda: bool(_texts(fake, "approved-42")), timeout=10)
    pressed = fake.history[-1].update_id
    owners = await inbox_owners(db)
    run = await finished_run(db, "shell")
    await fake.wait_until(lambda: bool(_texts(fake, "Approved by")), timeout=10)
    await asyncio.sleep(0.5)  # time for a second result, if one were coming
    return CrossApproval(
        asked_on=owners[f"telegram:{asked}"],
        pressed_on=owners[f"telegram:{pressed}"],
        ended_on=pid_of(run.owner),
        state=run.status,
        results=len(_texts(fake, "approved-42")),
    )


# -- Slack, HTTP mode -----------------------------------------------------------------------


def slack_config(url: str, fake: FakeSlack, port: int) -> str:
    return (
        DECK.format(url=url)
        + f"""
[slack]
mode = "http"
base_url = "{fake.api_url}"
listen = "127.0.0.1"
port = {port}
path = "/slack/events"
[[users]]
id = "slack:UADMIN"
role = "admin"
"""
        + SHELL
    )


@pytest.fixture
async def slack_http(balancer: RoundRobin) -> AsyncIterator[Slack]:
    connector = aiohttp.TCPConnector(force_close=True)  # the balancer picks per connection
    async with aiohttp.ClientSession(connector=connector) as http:
        yield Slack(f"{balancer.url}/slack/events", http, user="UADMIN")


async def test_slack_http_on_two_processes(
    tmp_path: Path,
    pg_url: str,
    balancer: RoundRobin,
    slack_http: Slack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in (
        ("SLACK_BOT_TOKEN", BOT_TOKEN),
        ("SLACK_APP_TOKEN", APP_TOKEN),
        ("SLACK_SIGNING_SECRET", SIGNING_SECRET),
    ):
        monkeypatch.setenv(name, value)
    fake = await FakeSlack().start()
    ports = (balancer.backends[0], balancer.backends[1])
    configs = (slack_config(pg_url, fake, ports[0]), slack_config(pg_url, fake, ports[1]))
    try:
        async with (
            asyncio.timeout(90),
            two_processes(tmp_path, configs, ports) as (one, two),
            Database(pg_url) as db,
        ):
            pids = {one.process.pid, two.process.pid}
            await _thread_follows_its_agent_across_processes(fake, slack_http, db, pids)
            approval = await _slack_approval_on_the_other_process(fake, slack_http, db)
            assert approval.asked_on != approval.pressed_on
            assert (approval.state, approval.ended_on, approval.results) == (
                RunState.DONE,
                approval.pressed_on,
                1,
            )
    finally:
        await fake.stop()


def _shown(fake: FakeSlack, needle: str) -> list[Message]:
    return [m for m in fake.messages.values() if needle in m.shown]


async def _thread_follows_its_agent_across_processes(
    fake: FakeSlack, slack: Slack, db: Database, pids: set[int]
) -> None:
    ts = await slack.mention("@other first", event_id="Ev1")
    await fake.wait_for_text("*other*: first")
    await slack.mention("second", event_id="Ev2", thread_ts=ts)  # on the other process
    await fake.wait_for_text("*other*: second")
    owners = await inbox_owners(db)
    assert {owners["slack:Ev1"], owners["slack:Ev2"]} == pids

    # Slack retries an event it thinks was missed: here, each one on both processes.
    for retry, event_id in ((1, "Ev1"), (2, "Ev1"), (1, "Ev2"), (2, "Ev2")):
        text = "@other first" if event_id == "Ev1" else "second"
        thread = ts if event_id == "Ev2" else None
        await slack.mention(text, event_id=event_id, thread_ts=thread, retry=retry)
    for n, event_id in enumerate(("Ev3", "Ev4")):  # one per process: after any duplicate
        await slack.mention(f"barrier {n}", event_id=event_id)
        await fake.wait_for_text(f"barrier {n}")
    assert len(_shown(fake, "*other*: first")) == 1
    assert len(_shown(fake, "*other*: second")) == 1


async def _slack_approval_on_the_other_process(
    fake: FakeSlack, slack: Slack, db: Database
) -> CrossApproval:
    await slack.mention("@shell echo approved-$((40+2))", event_id="Ev5")
    card = await fake.wait_for_text("Approval needed")
    await slack.press(card, "Approve", trigger="T1")
    await fake.wait_for(lambda f: "Approved by" in card.shown)
    await fake.wait_for_text("approved-42")
    owners = await inbox_owners(db)
    run = await finished_run(db, "shell")
    await asyncio.sleep(0.5)  # time for a second result, if one were coming
    assert card.buttons == []  # the decided card keeps no buttons
    return CrossApproval(
        asked_on=owners["slack:Ev5"],
        pressed_on=owners["slack:action:T1"],
        ended_on=pid_of(run.owner),
        state=run.status,
        results=len(_shown(fake, "approved-42")),
    )
