"""Jobs from chat, in-process: schedule, fire, report, pause, restart, refuse, retry."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import ColumnElement
from sqlmodel import SQLModel, select

from bot.app import open_deck
from bot.config import Config
from bot.deck import Deck
from bot.errors import TransportError
from bot.types import MessageRef, Outgoing
from storage.clock import FakeClock
from storage.db import Database
from storage.models import AuditEvent, Job, OutboxMessage, Run
from tests.fakes.chat import ChatRecorder
from tests.support.config import make_config
from tests.support.decks import DeckFactory
from tests.support.waiting import eventually

M = TypeVar("M", bound=SQLModel)

BASE = """
[deck]
default_agent = "echo"
admin_chat = "test:admins"
[[users]]
id = "test:admin"
role = "admin"
[[users]]
id = "test:viewer"
role = "viewer"
[[agents]]
name = "echo"
kind = "echo"
[[agents]]
name = "broken"
kind = "command"
command = ["false"]
"""


def job_id_in(text: str) -> str:
    found = re.search(r"/pause ([0-9a-f]{6})", text)
    assert found, text
    return found[1]


async def rows(deck: Deck, model: type[M], *where: ColumnElement[bool] | bool) -> list[M]:
    await deck.runner.flush()
    async with deck.db.session() as session:
        return list((await session.exec(select(model).where(*where))).all())


async def test_a_job_every_second_reports_into_chat(deck_with_chat: DeckFactory) -> None:
    async with deck_with_chat(make_config(BASE)) as (deck, chat):
        await chat.say("/every 1s echo tick")
        made = await chat.wait_for("/pause")
        job_id = job_id_in(made.text)
        assert "every 1s · echo tick · next" in made.text
        report = await chat.wait_for(f"Job {job_id} · every 1s")
        assert report.text.endswith("echo: tick")
        await chat.say("/pause " + job_id)
        await chat.wait_for(f"Job {job_id} paused.")
        await _delivered_runs(deck, job_id)  # before /jobs shows them
        await chat.say("/jobs")
        listing = await chat.wait_for("Jobs (1)")
        assert "paused" in listing.text
        await chat.say(f"/jobs {job_id}")
        shown = await chat.wait_for("Recent runs")
        assert "done" in shown.text
        assert "delivered" in shown.text
        assert "NOT delivered" not in shown.text
        await chat.say("/unschedule " + job_id)
        assert (await chat.wait_for("removed")).text == f"Job {job_id} removed."
        await chat.say("/jobs")
        assert (await chat.wait_for("No jobs")).text == "No jobs. /every 30m host disk makes one."


async def test_bad_expressions_and_roles_are_answered(deck_with_chat: DeckFactory) -> None:
    async with deck_with_chat(make_config(BASE)) as (deck, chat):
        await chat.say("/every 30x echo hi")
        bad = await chat.wait_for("Cannot read '30x'")
        assert "Example: /every 30m host disk" in bad.text
        await chat.say('/cron "0 9 * *" echo hi')
        await chat.wait_for('Example: /cron "0 9 * * 1-5" reporter summary')
        await chat.say("/at 2020-01-01 08:00 echo hi")
        await chat.wait_for("has passed")
        await chat.say("/every 30m nobody hi")
        await chat.wait_for("No agent named 'nobody'")
        await chat.say("/every 30m echo hi", user="test:viewer")
        await chat.wait_for("You need the admin role")
        await chat.say("/pause 123456")
        await chat.wait_for("No job '123456'")
        assert await rows(deck, Job) == []
        refused = await rows(deck, AuditEvent, AuditEvent.action == "job.refused")
        assert len(refused) == 4


async def test_a_report_target_that_cannot_be_reached_is_refused() -> None:
    chat = FlakyChat()
    async with open_deck(make_config(BASE), transports=[chat]) as (deck, _):
        await chat.say("/every 30m to=slack:C0123 echo hi")
        refused = await chat.wait_for("I cannot post to slack:C0123")
        assert "no such transport runs (running: test)" in refused.text
        assert "The job was not created." in refused.text
        chat.unreachable.add("test:gone")
        await chat.say("/every 30m to=test:gone echo hi")
        await chat.wait_for("I cannot post to test:gone (TransportError")
        await chat.say("/every 30m to=test:ops echo hi")
        made = await chat.wait_for("/pause")
        confirmation = await chat.wait_for("will report here", chat="test:ops")
        assert job_id_in(made.text) in confirmation.text
        assert len(await rows(deck, Job)) == 1


async def test_missed_runs_after_a_restart_are_one_run_with_a_count() -> None:
    config = make_config(BASE)
    first = ChatRecorder()
    async with open_deck(config, transports=[first]) as (deck, _):
        await first.say("/every 10m echo tick")
        job_id = job_id_in((await first.wait_for("/pause")).text)
        await deck.runner.flush()
    # The process was down for 35 minutes: three runs fell due.
    async with Database(config.deck.database()) as db, db.session() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        past = datetime.now(UTC) - timedelta(minutes=35, seconds=5)
        job.created_at = job.active_since = past
        session.add(job)
        await session.commit()
    second = ChatRecorder()
    async with open_deck(config, transports=[second]) as (deck, _):
        report = await second.wait_for(f"Job {job_id}")
        assert (
            "3 runs fell due while the scheduler was down; this run stands for all" in report.text
        )
        assert report.text.endswith("echo: tick")
        await asyncio.sleep(0.3)
        assert len([t for t in second.texts() if f"Job {job_id}" in t]) == 1


async def test_a_failed_run_is_reported_and_escalated(deck_with_chat: DeckFactory) -> None:
    async with deck_with_chat(make_config(BASE)) as (_deck, chat):
        await chat.say("/every 1h broken")
        job_id = job_id_in((await chat.wait_for("/pause")).text)
        await chat.say(f"/run {job_id}")
        await chat.wait_for(f"Job {job_id} · every 1h · run by hand")
        escalation = await chat.wait_for(f"Job {job_id} failed", chat="test:admins")
        assert "broken" in escalation.text


async def test_config_jobs_are_synced_and_chat_may_pause_but_not_remove(
    deck_with_chat: DeckFactory,
) -> None:
    config = make_config(
        BASE + '[[jobs]]\nname = "nightly"\nagent = "echo"\ninput = "report"\ncron = "0 3 * * *"\n'
    )
    async with deck_with_chat(config) as (_deck, chat):
        await chat.say("/jobs")
        listing = await chat.wait_for("Jobs (1)")
        assert "nightly [config] cron 0 3 * * * · echo report" in listing.text
        await chat.say("/unschedule nightly")
        await chat.wait_for("comes from the config file")
        await chat.say("/pause nightly")
        await chat.wait_for("Job nightly paused.")
        await chat.say("/status")
        status = await chat.wait_for("Scheduler: leader (this process)")
        assert "heartbeat" in status.text


async def test_an_undelivered_report_is_retried_from_the_outbox() -> None:
    clock = FakeClock(datetime.now(UTC))
    chat = FlakyChat()
    config: Config = make_config(BASE)
    async with open_deck(config, clock=clock, transports=[chat]) as (deck, _):
        await chat.say("/every 1h to=test:ops echo hello")
        job_id = job_id_in((await chat.wait_for("/pause")).text)
        chat.failures["test:ops"] = 2  # the platform is down for a while
        await chat.say(f"/run {job_id}")
        key = await _outbox_row(deck, job_id)
        assert deck.outbox is not None
        for _ in range(2):
            clock.advance(timedelta(minutes=31))
            await deck.outbox.pump()
        report = await chat.wait_for(f"Job {job_id} · every 1h", chat="test:ops")
        assert report.text.endswith("echo: hello")
        [row] = await rows(deck, OutboxMessage, OutboxMessage.key == key)
        assert (row.state, row.attempts) == ("sent", 3)  # the first try, then two from the outbox
        [run] = await rows(deck, Run, Run.job_id == job_id)
        assert run.delivered


async def test_a_report_that_never_gets_through_is_kept_and_the_admin_told() -> None:
    clock = FakeClock(datetime.now(UTC))
    chat = FlakyChat()
    async with open_deck(make_config(BASE), clock=clock, transports=[chat]) as (deck, _):
        await chat.say("/every 1h to=test:ops echo hello")
        job_id = job_id_in((await chat.wait_for("/pause")).text)
        chat.failures["test:ops"] = 100
        await chat.say(f"/run {job_id}")
        key = await _outbox_row(deck, job_id)
        assert deck.outbox is not None
        for _ in range(7):
            clock.advance(timedelta(minutes=31))
            await deck.outbox.pump()
        told = await chat.wait_for("could not be delivered after 6 attempts", chat="test:admins")
        assert f"run:{key.removeprefix('run:')}" in told.text
        [row] = await rows(deck, OutboxMessage, OutboxMessage.key == key)
        assert row.state == "undelivered"
        [run] = await rows(deck, Run, Run.job_id == job_id)
        assert not run.delivered


async def _delivered_runs(deck: Deck, job_id: str) -> list[Run]:
    """The job's runs once every one has finished and its report is recorded delivered.

    A run is marked finished before its report goes out, and the delivery is recorded
    after the report is posted: reading at once can catch a run between the two.
    """
    runs: list[Run] = []
    try:
        async with asyncio.timeout(10):
            while True:
                runs = await rows(deck, Run, Run.job_id == job_id)
                if runs and all(run.finished_at and run.delivered for run in runs):
                    return runs
                await asyncio.sleep(0.05)
    except TimeoutError:
        states = [(run.id[:8], run.status, run.finished_at, run.delivered) for run in runs]
        raise AssertionError(f"runs of {job_id} not all finished and delivered: {states}") from None


async def _outbox_row(deck: Deck, job_id: str) -> str:
    """The key of the first run report in the outbox, once there is one."""
    found = await eventually(
        lambda: rows(deck, OutboxMessage, OutboxMessage.subject.startswith("run:"))  # type: ignore[attr-defined]
    )
    return str(found[0].key)


class FlakyChat(ChatRecorder):
    """A chat platform with chats it cannot post to, for a while or at all."""

    def __init__(self) -> None:
        super().__init__()
        self.failures: dict[str, int] = {}
        self.unreachable: set[str] = set()

    async def send(self, message: Outgoing) -> MessageRef:
        if message.chat in self.unreachable:
            raise TransportError(f"chat {message.chat} not found")
        if self.failures.get(message.chat, 0) > 0:
            self.failures[message.chat] -= 1
            raise TransportError("platform unavailable (503)")
        return await super().send(message)
