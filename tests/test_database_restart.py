"""A PostgreSQL restart under load, then an ordinary restart: every message runs once.

Two real `agentdeck run` processes take Telegram's webhook behind the round-robin
balancer, on a PostgreSQL server of the test's own (`tests.support.pgserver`), which it
restarts while 300 messages stream in. A command agent appends each input to a file,
so executions are counted, not guessed. Afterwards both processes stop and start again
(the ordinary restart that used to run what the database restart had left unrecorded).

Must hold: each message executed once and answered once, nothing unhandled left in the
inbox, no run left `running`, every answer recorded sent in the outbox, and nothing
more after the ordinary restart.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from storage.db import Database
from storage.models import InboxItem, OutboxMessage, OutboxState, Run, RunState
from tests.fakes.round_robin import RoundRobin
from tests.fakes.telegram_server import FakeTelegram
from tests.support.cluster import two_processes
from tests.support.network import free_port
from tests.support.pgserver import PgServer

MESSAGES = 300
RESTART_AFTER_SECONDS = 3.0
USERS = tuple(range(2001, 2011))  # ten chats: runs of different chats go at once


def config(url: str, fake: FakeTelegram, proxy: RoundRobin, port: int, ran: Path) -> str:
    users = "".join(f'[[users]]\nid = "telegram:{u}"\nrole = "admin"\n' for u in USERS)
    count = f'printf \'%s\\n\' "$1" >> {ran} && echo "ran $1"'
    return f"""
[deck]
database_url = "{url}"
default_agent = "count"
process_heartbeat_seconds = 0.5
process_stale_seconds = 3
[scheduler]
enabled = false
[telegram]
token = "env:TG_TOKEN"
base_url = "{fake.base_url}"
mode = "webhook"
webhook_url = "{proxy.url}/hook"
listen = "127.0.0.1"
port = {port}
path = "/hook"
[[agents]]
name = "count"
kind = "command"
command = ["/bin/sh", "-c", {json.dumps(count)}, "sh", "{{input}}"]
approval = "never"
timeout = 30
{users}"""


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_a_postgresql_restart_under_load_then_an_ordinary_restart(
    tmp_path: Path, pg_throwaway: PgServer, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    fake = await FakeTelegram(connection_per_update=True).start()
    monkeypatch.setenv("TG_TOKEN", fake.token)
    balancer = await RoundRobin([free_port(), free_port()]).start()
    ran = tmp_path / "ran.txt"
    url = pg_throwaway.url()
    ports = (balancer.backends[0], balancer.backends[1])
    configs = (
        config(url, fake, balancer, ports[0], ran),
        config(url, fake, balancer, ports[1], ran),
    )
    texts = [f"m{n}" for n in range(MESSAGES)]
    try:
        async with asyncio.timeout(240):
            async with two_processes(tmp_path, configs, ports) as bots:
                await fake.wait_for("setWebhook", count=2, timeout=20)
                await _stream_with_a_restart(fake, pg_throwaway, texts, mode)
                await _all_answered(fake, texts)
                await _settled(url)
                for bot in bots:  # the ordinary restart: a clean stop first
                    bot.process.send_signal(signal.SIGTERM)
                for bot in bots:
                    await asyncio.wait_for(bot.process.wait(), 60)
            waits = _waits(tmp_path)
            second = tmp_path / "again"
            second.mkdir()
            async with two_processes(second, configs, ports):
                await fake.wait_for("setWebhook", count=4, timeout=20)
                await _settled(url)
                await asyncio.sleep(2)  # time for anything run again to show
            outcome = await _outcome(fake, ran, texts, url)
            figures = _figures(fake, ran, texts)
    finally:
        await balancer.stop()
        await fake.stop()
    print(f"\n{mode} restart: {figures}; writes waited: {waits}")
    assert outcome == {
        "executed not once": {},
        "never executed": [],
        "answered not once": {},
        "never answered": [],
        "executed or answered, never sent": [],
        "unhandled inbox, running runs": (0, 0),
        "outbox not sent": {},
        "outbox sent, at least one per message": True,
        "runs": Counter({RunState.DONE: len(texts)}),
        "inbox rows": len(texts),
    }


async def _stream_with_a_restart(
    fake: FakeTelegram, server: PgServer, texts: list[str], mode: str
) -> None:
    """Messages at a steady pace; the server restarts a few seconds in."""

    async def say_all() -> None:
        for n, said in enumerate(texts):
            fake.user_says(said, user=USERS[n % len(USERS)])
            await asyncio.sleep(0.015)

    saying = asyncio.create_task(say_all())
    await asyncio.sleep(RESTART_AFTER_SECONDS)
    await server.restart_async(mode)
    await saying


def _answers(fake: FakeTelegram) -> Counter[str]:
    found: Counter[str] = Counter()
    for user in USERS:
        for sent in fake.sent_texts(user):
            if match := re.search(r"\bran (m\d+)(?!\d)", sent):
                found[match.group(1)] += 1
    return found


async def _all_answered(fake: FakeTelegram, texts: list[str]) -> None:
    try:
        await fake.wait_until(lambda: set(_answers(fake)) >= set(texts), timeout=120)
    except TimeoutError:
        missing = sorted(set(texts) - set(_answers(fake)))
        sample = [t for u in USERS for t in fake.sent_texts(u)][:5]
        raise AssertionError(
            f"not answered: {missing[:20]}… ({len(missing)}); sent: {sample}"
        ) from None


async def _settled(url: str) -> None:
    """Wait until no update is unhandled and no run is running (both written behind)."""
    async with Database(url) as db:
        for _ in range(300):
            unhandled, running = await _unfinished(db)
            if not unhandled and not running:
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"left unfinished: {unhandled} updates, {running} runs")


async def _unfinished(db: Database) -> tuple[int, int]:
    async with db.session() as session:
        unhandled = await session.exec(
            select(InboxItem.key).where(col(InboxItem.handled_at).is_(None))
        )
        running = await session.exec(select(Run.id).where(Run.status == RunState.RUNNING))
        return len(unhandled.all()), len(running.all())


def _figures(fake: FakeTelegram, ran: Path, texts: list[str]) -> str:
    executed = Counter(ran.read_text().split())
    return (
        f"{len(texts)} messages, {executed.total()} executions,"
        f" {executed.total() - len(executed)} duplicates, {len(set(texts) - set(executed))} lost,"
        f" {_answers(fake).total()} answers"
    )


async def _outcome(fake: FakeTelegram, ran: Path, texts: list[str], url: str) -> dict[str, Any]:
    """What went wrong, by kind (all empty or zero when every message ran and was answered
    exactly once), and what the database holds."""
    executed = Counter(ran.read_text().split())
    answered = _answers(fake)
    async with Database(url) as db:
        unfinished = await _unfinished(db)
        async with db.session() as session:
            states = Counter((await session.exec(select(OutboxMessage.state))).all())
            runs = Counter((await session.exec(select(Run.status))).all())
            # sqlmodel types exec() for select/update only; it runs a text() all the same
            count = text("SELECT count(*) FROM inbox")
            inbox = (await session.exec(count)).scalar()  # type: ignore[call-overload]
    return {
        "executed not once": {t: c for t, c in executed.items() if c != 1},
        "never executed": sorted(set(texts) - set(executed)),
        "answered not once": {t: c for t, c in answered.items() if c != 1},
        "never answered": sorted(set(texts) - set(answered)),
        "executed or answered, never sent": sorted((set(executed) | set(answered)) - set(texts)),
        "unhandled inbox, running runs": unfinished,
        "outbox not sent": {s: c for s, c in states.items() if s != OutboxState.SENT},
        "outbox sent, at least one per message": states[OutboxState.SENT] >= len(texts),
        "runs": runs,
        "inbox rows": inbox,
    }


def _waits(tmp_path: Path) -> list[str]:
    """What the processes logged about waiting for the database (the run's figures)."""
    found: list[str] = []
    for log in tmp_path.glob("*/stderr.txt"):
        for line in log.read_text(errors="replace").splitlines():
            if "took the queued writes again" in line or "went through after waiting" in line:
                found.append(line.split(": ", 1)[-1][:160])
            if "refused a queued write" in line or "writes are lost" in line:
                found.append("!! " + line[:200])
    return found
