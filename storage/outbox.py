"""The outbox: messages that must reach a chat, kept until the transport returned an id.

Two ways in. `put()` commits a row that the delivery loop sends later (job reports).
`record()` is the chat path: the row is queued on the group-committing write-behind
already *sending*, the message goes out at once, and `sent()`/`failed()`/`in_doubt()`
follow through the write-behind too — no commit waits before a reply. A crash before
those writes commit leaves the row `sending`; once its lease has run out, the delivery
loop treats it as in doubt: it may have arrived.

Each delivery-loop attempt *leases* its row with a compare-and-set on state and
`attempts`, so two processes never send the same row at once. The `key` is an
idempotency key: one row per message, whoever stores it first.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_
from sqlmodel import col, func, select, update

from storage.clock import Clock
from storage.db import Database
from storage.faults import retrying
from storage.models import OutboxMessage, OutboxState
from storage.writer import WriteBehind

LEASE = timedelta(minutes=2)  # longer than any one send may take (sends have timeouts)
# What the delivery loop picks up: due messages, and in-flight ones whose sender died.
_DELIVERABLE = (OutboxState.PENDING, OutboxState.IN_DOUBT, OutboxState.SENDING)


class OutboxStore:
    def __init__(self, *, db: Database, clock: Clock, writer: WriteBehind | None = None) -> None:
        self._db = db
        self._clock = clock
        self._writer = writer

    def record(
        self,
        key: str,
        *,
        chat: str,
        thread: str | None,
        payload: dict[str, Any],
        sending: bool,
        subject: str = "",
    ) -> None:
        """Queue a row behind: `sending` (an attempt starts now, leased) or pending."""
        now = self._clock.now()
        row = _row(key, chat=chat, thread=thread, payload=payload, subject=subject, now=now)
        if sending:  # an attempt starts now, leased for a while
            row |= {"state": OutboxState.SENDING, "attempts": 1, "next_attempt_at": now + LEASE}
        self._behind().insert(OutboxMessage, row, or_ignore=True)

    def sent_behind(self, key: str, message_id: str) -> None:
        self._behind().update(
            OutboxMessage,
            "key",
            {
                "key": key,
                "state": OutboxState.SENT,
                "message_id": message_id,
                "sent_at": self._clock.now(),
            },
        )

    def failed_behind(
        self, key: str, when: datetime, error: str, *, payload: dict[str, Any] | None = None
    ) -> None:
        """The attempt provably did not reach the platform: pending again at `when`.
        `payload`: the message as it now is (the parts of a long one that went out)."""
        values: dict[str, Any] = {
            "key": key,
            "state": OutboxState.PENDING,
            "next_attempt_at": when,
            "last_error": error[:2000],
        }
        if payload is not None:
            values["payload"] = payload
        self._behind().update(OutboxMessage, "key", values)

    def given_up_behind(self, key: str, error: str) -> None:
        """The sender wanted it now or not at all (`retry=False`): undelivered, not retried."""
        self._behind().update(
            OutboxMessage,
            "key",
            {"key": key, "state": OutboxState.UNDELIVERED, "last_error": error[:2000]},
        )

    def in_doubt_behind(self, key: str, error: str) -> None:
        """The attempt may have reached the platform: the delivery loop looks first."""
        self._behind().update(
            OutboxMessage,
            "key",
            {
                "key": key,
                "state": OutboxState.IN_DOUBT,
                "next_attempt_at": self._clock.now(),
                "last_error": error[:2000],
            },
        )

    async def settle(self) -> None:
        """Wait until the rows and marks queued behind are committed (before reading)."""
        if self._writer is not None:
            await self._writer.flush()

    def _behind(self) -> WriteBehind:
        if self._writer is None:
            raise RuntimeError("this OutboxStore has no write-behind")
        return self._writer

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
        row = _row(key, chat=chat, thread=thread, payload=payload, subject=subject, now=now)
        row["next_attempt_at"] = not_before or now
        statement = self._db.insert(OutboxMessage).values([row]).on_conflict_do_nothing()
        return await self._write(statement)

    async def due(
        self, chats: Iterable[str], limit: int = 50, *, backoff_over: bool = False
    ) -> list[OutboxMessage]:
        """Messages whose time has come, for chats whose transport runs here.

        `backoff_over` (at start): pending messages are due whatever their pause says.
        """
        prefixes = [col(OutboxMessage.chat_id).startswith(f"{name}:") for name in chats]
        if not prefixes:
            return []
        now = self._clock.now()
        due_now = col(OutboxMessage.next_attempt_at) <= now
        if backoff_over:
            due_now = or_(due_now, col(OutboxMessage.state) == OutboxState.PENDING)
        query = (
            select(OutboxMessage)
            .where(
                col(OutboxMessage.state).in_(_DELIVERABLE),
                due_now,
                or_(*prefixes),
            )
            .order_by(col(OutboxMessage.next_attempt_at), col(OutboxMessage.id))
            .limit(limit)
        )
        async with self._db.session() as session:
            return list((await session.exec(query)).all())

    async def lease(self, row: OutboxMessage) -> bool:
        """Take this attempt: count it and hold the row for a while; False if someone has.

        The row keeps the state it had (in `row.state`): the caller must know whether an
        earlier attempt may have arrived.
        """
        statement = (
            update(OutboxMessage)
            .where(
                col(OutboxMessage.id) == row.id,
                col(OutboxMessage.state) == row.state,
                col(OutboxMessage.attempts) == row.attempts,
            )
            .values(
                state=OutboxState.SENDING,
                attempts=row.attempts + 1,
                next_attempt_at=self._clock.now() + LEASE,
            )
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

    async def retry_at(
        self,
        row: OutboxMessage,
        when: datetime,
        error: str,
        state: OutboxState = OutboxState.PENDING,
        payload: dict[str, Any] | None = None,
    ) -> None:
        values: dict[str, Any] = {"state": state, "next_attempt_at": when}
        values["last_error"] = error[:2000]
        if payload is not None:  # the parts of a long message that went out
            values["payload"] = payload
        statement = update(OutboxMessage).where(col(OutboxMessage.id) == row.id).values(values)
        await self._write(statement)

    async def give_up(
        self, row: OutboxMessage, error: str, state: OutboxState = OutboxState.UNDELIVERED
    ) -> None:
        statement = (
            update(OutboxMessage)
            .where(col(OutboxMessage.id) == row.id)
            .values(state=state, last_error=error[:2000])
        )
        await self._write(statement)

    async def next_due(self) -> datetime | None:
        query = select(func.min(OutboxMessage.next_attempt_at)).where(
            col(OutboxMessage.state).in_(_DELIVERABLE)
        )
        async with self._db.session() as session:
            return (await session.exec(query)).first()

    async def get(self, key: str) -> OutboxMessage | None:
        query = select(OutboxMessage).where(OutboxMessage.key == key)
        async with self._db.session() as session:
            return (await session.exec(query)).first()

    async def _write(self, statement: Any) -> bool:
        """Run one statement in a transaction of its own; True if it changed a row.

        An unreachable or full database is waited out (a delivered message must be
        marked sent, or it would look in doubt). Each statement is safe to run again
        after a lost answer: an insert ignores its key, a lease or mark compares first.
        """

        async def once() -> bool:
            async with self._db.session() as session:
                result = await session.exec(statement)
                await session.commit()
            return bool(result.rowcount)

        return await retrying(once, "writing the outbox", pressure=self._db.pressure)


def _row(
    key: str,
    *,
    chat: str,
    thread: str | None,
    payload: dict[str, Any],
    subject: str,
    now: datetime,
) -> dict[str, Any]:
    """A pending message's row, due now."""
    return {
        "key": key,
        "chat_id": chat,
        "thread_id": thread,
        "payload": payload,
        "subject": subject,
        "state": OutboxState.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
