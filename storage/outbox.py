"""The outbox: messages that must reach a chat, kept until the transport returned an id.

Rows are written before the first attempt. Each attempt *leases* its row with a
compare-and-set on `attempts`, so two processes never send the same row at once; a
process that dies mid-attempt leaves a lease that simply runs out. The `key` is an
idempotency key: putting the same message twice stores it once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, func, select, update

from storage.clock import Clock
from storage.db import Database
from storage.models import OutboxMessage, OutboxState

LEASE = timedelta(minutes=2)  # longer than any one send may take (sends have timeouts)


class OutboxStore:
    def __init__(self, *, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def put(
        self,
        key: str,
        *,
        chat: str,
        thread: str | None,
        payload: dict[str, Any],
        subject: str = "",
        not_before: datetime | None = None,
    ) -> bool:
        """Store a message to send; False when a message with this key exists already."""
        now = self._clock.now()
        row = {
            "key": key,
            "chat_id": chat,
            "thread_id": thread,
            "payload": payload,
            "subject": subject,
            "state": OutboxState.PENDING,
            "attempts": 0,
            "next_attempt_at": not_before or now,
            "created_at": now,
        }
        insert = sqlite_insert if self._db.is_sqlite else pg_insert
        statement = insert(OutboxMessage).values([row]).on_conflict_do_nothing()
        async with self._db.session() as session:
            result = await session.exec(statement)
            await session.commit()
        return bool(result.rowcount)

    async def due(self, chats: Iterable[str], limit: int = 50) -> list[OutboxMessage]:
        """Pending messages whose time has come, for chats whose transport runs here."""
        prefixes = [col(OutboxMessage.chat_id).startswith(f"{name}:") for name in chats]
        if not prefixes:
            return []
        query = (
            select(OutboxMessage)
            .where(
                OutboxMessage.state == OutboxState.PENDING,
                col(OutboxMessage.next_attempt_at) <= self._clock.now(),
                or_(*prefixes),
            )
            .order_by(col(OutboxMessage.next_attempt_at), col(OutboxMessage.id))
            .limit(limit)
        )
        async with self._db.session() as session:
            return list((await session.exec(query)).all())

    async def lease(self, row: OutboxMessage) -> bool:
        """Take this attempt: count it and hold the row for a while; False if someone has."""
        statement = (
            update(OutboxMessage)
            .where(
                col(OutboxMessage.id) == row.id,
                col(OutboxMessage.state) == OutboxState.PENDING,
                col(OutboxMessage.attempts) == row.attempts,
            )
            .values(attempts=row.attempts + 1, next_attempt_at=self._clock.now() + LEASE)
        )
        won = await self._write(statement)
        if won:
            row.attempts += 1
        return won

    async def sent(self, row: OutboxMessage, message_id: str) -> None:
        statement = (
            update(OutboxMessage)
            .where(col(OutboxMessage.id) == row.id)
            .values(state=OutboxState.SENT, message_id=message_id, sent_at=self._clock.now())
        )
        await self._write(statement)

    async def retry_at(self, row: OutboxMessage, when: datetime, error: str) -> None:
        statement = (
            update(OutboxMessage)
            .where(col(OutboxMessage.id) == row.id)
            .values(next_attempt_at=when, last_error=error[:2000])
        )
        await self._write(statement)

    async def give_up(self, row: OutboxMessage, error: str) -> None:
        statement = (
            update(OutboxMessage)
            .where(col(OutboxMessage.id) == row.id)
            .values(state=OutboxState.UNDELIVERED, last_error=error[:2000])
        )
        await self._write(statement)

    async def next_due(self) -> datetime | None:
        query = select(func.min(OutboxMessage.next_attempt_at)).where(
            OutboxMessage.state == OutboxState.PENDING
        )
        async with self._db.session() as session:
            return (await session.exec(query)).first()

    async def get(self, key: str) -> OutboxMessage | None:
        query = select(OutboxMessage).where(OutboxMessage.key == key)
        async with self._db.session() as session:
            return (await session.exec(query)).first()

    async def _write(self, statement: Any) -> bool:
        async with self._db.session() as session:
            result = await session.exec(statement)
            await session.commit()
        return bool(result.rowcount)
