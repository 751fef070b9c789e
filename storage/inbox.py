"""The inbox: updates stored before the platform is told they arrived.

A redelivered update finds its key already here and is skipped; an update stored
but never handled (the process died) is handed out again at the next start.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select

from storage.clock import Clock
from storage.db import Database
from storage.models import InboxItem
from storage.writer import WriteBehind


class Inbox:
    def __init__(self, *, db: Database, writer: WriteBehind, clock: Clock) -> None:
        self._db = db
        self._writer = writer
        self._clock = clock

    async def accept(self, items: Sequence[tuple[str, dict[str, Any]]]) -> set[str]:
        """Store new updates durably; return the keys that were not seen before."""
        if not items:
            return set()
        now = self._clock.now()
        rows = [{"key": key, "payload": payload, "received_at": now} for key, payload in items]
        insert = sqlite_insert if self._db.is_sqlite else pg_insert
        statement = (
            insert(InboxItem).values(rows).on_conflict_do_nothing().returning(col(InboxItem.key))
        )
        async with self._db.write_session() as session:
            result = await session.exec(statement)
            fresh = {row[0] for row in result}
            await session.commit()
        return fresh

    def mark_handled(self, key: str) -> None:
        """Mark an update done and drop its payload: the key alone stops a redelivery, and
        the text may hold a value typed for `/secret set` that must not stay stored."""
        row = {"key": key, "handled_at": self._clock.now(), "payload": {}}
        self._writer.update(InboxItem, "key", row)  # one executemany per write batch

    async def unhandled(self) -> list[InboxItem]:
        query = select(InboxItem).where(col(InboxItem.handled_at).is_(None))
        async with self._db.session() as session:
            return list((await session.exec(query.order_by(col(InboxItem.received_at)))).all())
