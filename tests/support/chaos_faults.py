"""Chaos without kills: a PostgreSQL restart under load, and Telegram API errors.

`database_restart`: the webhook pair of `tests.support.chaos` on a throwaway PostgreSQL server
(`tests.support.pgserver`, never the shared one), which is restarted at each fault point while
messages go on streaming in; then both bot processes stop and start again (the ordinary
restart that used to run again what the database restart had left unrecorded). Recovery
runs from the restart to a bot process storing an update again (a webhook POST
answered 200).

`api_errors`: one polling process on SQLite; the fake Telegram answers a share of
`sendMessage` calls with a 500, a 503 (both with the Bot API's JSON body: "not sent") or
a 429 with `retry_after`. Every answer must still arrive exactly once, and every outbox
row end `sent`. Recovery is, per refused call, the time until the same text went out.

Both end in a `Tally` of `tests.support.chaos` (executions counted by the command agent).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections import Counter
from pathlib import Path

from sqlmodel import select

from storage.db import Database, sqlite_url
from storage.models import OutboxMessage, OutboxState
from tests.fakes.telegram_server import Call, FakeTelegram
from tests.support import chaos
from tests.support.chaos import Pair, Plan, Tally
from tests.support.pgserver import PgServer
from tests.support.waiting import eventually

REFUSALS = (500, 503, 429)  # each a Bot API answer with a JSON body: the message was not sent
RETRY_AFTER = 1  # seconds a 429 asks to wait
OK = 200


async def database_restart(
    tmp: Path, plan: Plan, server: PgServer, *, mode: str = "fast", settle_seconds: float = 120.0
) -> Tally:
    """The webhook pair on `server`, restarted (`mode`: fast or immediate) at each fault
    point; an ordinary restart of both bot processes before counting."""

    async def restart(pair: Pair) -> float:
        loop = asyncio.get_running_loop()
        began = loop.time()
        await server.restart_async(mode)
        await _stored_again(pair.fake, settle_seconds)
        return loop.time() - began

    return await chaos.webhook_pair(
        tmp,
        plan,
        server.url(),
        settle_seconds=settle_seconds,
        fault=restart,
        setup=f"database-restart: PostgreSQL ({mode}) restarted under two webhook processes",
        restart_after=True,
        aside=True,
    )


async def _stored_again(fake: FakeTelegram, timeout: float) -> None:
    """Until a bot process accepts an update again (answers a webhook POST 200, which it
    does once the update's row is stored), or the time is up."""
    after = len(fake.webhook_statuses)
    with contextlib.suppress(TimeoutError):
        await eventually(lambda: OK in fake.webhook_statuses[after:], timeout)


def refuse_a_share(fake: FakeTelegram, *, calls: int, share: float, seed: int) -> int:
    """Of the next `calls` sendMessage calls, refuse about `share` (500, 503 or 429 in
    turn, at random places); the number of refusals planned."""
    rng = random.Random(seed)  # noqa: S311 (a repeatable experiment)
    gap, planned = 0, 0
    for _ in range(calls):
        if rng.random() >= share:
            gap += 1
            continue
        status = REFUSALS[planned % len(REFUSALS)]
        fake.fail_next("sendMessage", status=status, retry_after=RETRY_AFTER, after=gap)
        gap, planned = 0, planned + 1
    return planned


async def api_errors(
    tmp: Path, plan: Plan, *, share: float = 0.1, settle_seconds: float = 120.0
) -> Tally:
    """One polling process on SQLite, no kills; `share` of sendMessage calls refused."""
    fake = await FakeTelegram().start()
    refuse_a_share(fake, calls=plan.messages * 2, share=share, seed=plan.seed)
    plan = dataclasses.replace(plan, kills=0)
    tally = await chaos.polling(
        tmp,
        plan,
        settle_seconds=settle_seconds,
        fake=fake,
        setup=f"api-errors: Telegram refuses {share:.0%} of sends (500, 503, 429)",
    )
    refused = [c for c in fake.calls if c.method == "sendMessage" and c.status in REFUSALS]
    tally.kills = len(refused)
    tally.recovery = _resent_after(fake)
    async with Database(sqlite_url(tmp / "data")) as db, db.session() as session:
        states = Counter((await session.exec(select(OutboxMessage.state))).all())
    if set(states) - {OutboxState.SENT}:
        tally.more.append(f"outbox rows not sent: {dict(states)}")
    if untried := set(REFUSALS) - {call.status for call in refused}:
        tally.more.append(f"no sendMessage was refused with {sorted(untried)}: untested")
    return tally


def _resent_after(fake: FakeTelegram) -> list[float]:
    """For each refused sendMessage, the seconds until the same text reached that chat."""
    sends = [c for c in fake.calls if c.method == "sendMessage"]
    waits: list[float] = []
    for n, call in enumerate(sends):
        if call.status in REFUSALS:
            same = _what(call)
            later = next((c for c in sends[n + 1 :] if c.status == OK and _what(c) == same), None)
            if later is not None:
                waits.append(later.at - call.at)
    return waits


def _what(call: Call) -> tuple[object, object]:
    return call.params.get("chat_id"), call.params.get("text")
