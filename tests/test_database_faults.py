"""The database goes away for a while (a PostgreSQL restart): queued work waits, then lands."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, insert, text
from sqlmodel import select

from storage.clock import SystemClock
from storage.db import Database, sqlite_url
from storage.errors import WriteFailed
from storage.models import Message, Note
from storage.writer import WriteBehind
from tests.fakes.tcp_proxy import CuttableProxy
from tests.fakes.telegram_server import FakeTelegram
from tests.support.decks import running
from tests.support.pgserver import PgServer
from tests.support.telegram import ADMIN, config_for, texts_to


async def test_writes_wait_for_a_restarted_database(pg_url: str) -> None:
    proxy = await CuttableProxy(5432).start()
    url = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    try:
        async with Database(url) as db, WriteBehind(db) as writer:
            now = SystemClock().now()
            await writer.write(_note("before", now))
            await proxy.cut()
            during = writer.insert(
                Note, {"chat_id": "c", "agent": "a", "text": "during", "created_at": now}
            )
            await asyncio.sleep(1.0)
            assert not during.done()  # waiting, not dropped
            await proxy.restore()
            async with asyncio.timeout(20):
                await during
            async with db.session() as session:
                texts = sorted(n.text for n in (await session.exec(select(Note))).all())
    finally:
        await proxy.stop()
    assert texts == ["before", "during"]


def _note(text: str, now: datetime) -> Callable[[Connection], None]:
    def op(conn: Connection) -> None:
        row = {"chat_id": "c", "agent": "a", "text": text, "created_at": now}
        conn.execute(insert(Note.__table__), [row])  # type: ignore[attr-defined]

    return op


async def test_a_write_the_database_refuses_fails_alone_and_blocks_nothing(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A missing table is no outage: that write fails at once (its future raises, one
    log line), and the writes queued with it and behind it commit."""
    async with Database(sqlite_url(data_dir)) as db, WriteBehind(db) as writer:
        now = SystemClock().now()
        async with db.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE notes RENAME TO notes_away"))
        bad = writer.insert(Note, {"chat_id": "c", "agent": "a", "text": "lost", "created_at": now})
        beside = writer.submit(_turn("beside", now))
        async with asyncio.timeout(5):
            with pytest.raises(WriteFailed, match="no such table: notes"):
                await bad
            await beside
            behind = [writer.submit(_turn(f"behind {n}", now)) for n in range(3)]
            await asyncio.gather(*behind)
        async with db.session() as session:
            texts = sorted(m.content for m in (await session.exec(select(Message))).all())
    assert texts == ["behind 0", "behind 1", "behind 2", "beside"]
    refused = [r for r in caplog.records if "refused a queued write" in r.getMessage()]
    assert len(refused) == 1
    assert "insert into notes" in refused[0].getMessage()
    assert "'lost'" in refused[0].getMessage()


def _turn(content: str, now: datetime) -> Callable[[Connection], None]:
    def op(conn: Connection) -> None:
        row = {"chat_id": "c", "agent": "a", "role": "user", "content": content, "created_at": now}
        conn.execute(insert(Message.__table__), [row])  # type: ignore[attr-defined]

    return op


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_no_queued_write_is_dropped_across_a_postgresql_restart(
    pg_throwaway: PgServer, mode: str
) -> None:
    """Writes keep coming while the server restarts (`fast`: sessions are told to end,
    `immediate`: a crash): every one commits, and each future says so."""
    async with Database(pg_throwaway.url()) as db, WriteBehind(db) as writer:
        now = SystemClock().now()
        futures: list[asyncio.Future[None]] = []

        async def stream() -> None:
            for n in range(400):
                futures.append(writer.insert(Message, _row(f"m{n}", now)))
                await asyncio.sleep(0.005)

        streaming = asyncio.create_task(stream())
        await asyncio.sleep(0.5)
        await pg_throwaway.restart_async(mode)
        await streaming
        async with asyncio.timeout(60):
            results = await asyncio.gather(*futures, return_exceptions=True)
        async with db.session() as session:
            stored = [m.content for m in (await session.exec(select(Message))).all()]
    assert [r for r in results if r is not None] == []
    assert sorted(stored) == sorted(f"m{n}" for n in range(400))


def _row(content: str, now: datetime) -> dict[str, object]:
    return {"chat_id": "c", "agent": "a", "role": "user", "content": content, "created_at": now}


async def test_a_refused_inbox_write_is_not_acknowledged_to_telegram(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Polling hands new updates over while their rows are written; the next getUpdates
    (the acknowledgement) waits for the write. A refused write raises there: the offset
    stays, Telegram delivers the update again, and it is recognised, not run twice."""

    fake = await FakeTelegram().start()
    monkeypatch.setenv("TG_TOKEN", fake.token)
    try:
        async with running(config_for(fake)) as deck:
            fake.user_says("first", user=ADMIN)
            await fake.wait_until(lambda: any("first" in t for t in texts_to(fake, ADMIN)))
            async with deck.db.engine.begin() as conn:
                await conn.execute(text("ALTER TABLE inbox RENAME TO inbox_away"))
            second = fake.user_says("second", user=ADMIN)
            await fake.wait_until(lambda: _asked_for(fake, second) >= 2, timeout=10)
            async with deck.db.engine.begin() as conn:
                await conn.execute(text("ALTER TABLE inbox_away RENAME TO inbox"))
            fake.user_says("third", user=ADMIN)
            await fake.wait_until(lambda: any("third" in t for t in texts_to(fake, ADMIN)))
            answers = texts_to(fake, ADMIN)
    finally:
        await fake.stop()
    assert sum("second" in t for t in answers) == 1  # handed over once, though delivered twice
    assert sum("third" in t for t in answers) == 1


def _asked_for(fake: FakeTelegram, update_id: int) -> int:
    """getUpdates calls whose offset asked for this update (so had not acknowledged it)."""
    return sum(
        int(call.params.get("offset") or 0) == update_id for call in fake.calls_to("getUpdates")
    )
