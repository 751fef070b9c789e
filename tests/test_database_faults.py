"""The database goes away for a while (a PostgreSQL restart): queued work waits, then lands."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection, insert
from sqlmodel import select

from storage.db import Database
from storage.models import Note
from storage.writer import WriteBehind
from tests.fakes.tcp_proxy import CuttableProxy


async def test_writes_wait_for_a_restarted_database(pg_url: str) -> None:
    proxy = await CuttableProxy(5432).start()
    url = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    try:
        async with Database(url) as db, WriteBehind(db) as writer:
            from storage.clock import SystemClock

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
