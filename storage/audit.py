"""The audit log: append-only rows, each carrying the hash of the previous one."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, text
from sqlmodel import col, select

from storage import batchsql
from storage.clock import Clock
from storage.db import Database
from storage.models import AuditEvent
from storage.scrubber import redact_tree
from storage.writer import WriteBehind

GENESIS = "0" * 64
# Held while appending on PostgreSQL so that two processes never fork the chain.
_PG_AUDIT_LOCK = 7_402_001


@dataclass(slots=True)
class Event:
    """An event as recorded, before it is chained and written (a plain object: the
    table model's instrumentation cost more than the rest of `record`)."""

    at: datetime
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]
    prev_hash: str = ""
    hash: str = ""

    def row(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "detail": self.detail,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def event_hash(prev_hash: str, event: Event | AuditEvent) -> str:
    body = [prev_hash, event.at.isoformat(), event.actor, event.action, event.subject, event.detail]
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """What `AuditLog.verify` found: rows whose links held, and the first that broke."""

    rows: int
    broken: AuditEvent | None


class AuditLog:
    def __init__(
        self,
        *,
        db: Database,
        writer: WriteBehind,
        clock: Clock,
        redact: Callable[[str], str] = lambda s: s,
    ) -> None:
        self._db = db
        self._writer = writer
        self._clock = clock
        self._redact = redact
        self._pending: list[Event] = []
        self._observers: list[Callable[[Event], None]] = []

    def observe(self, observer: Callable[[Event], None]) -> Callable[[], None]:
        """Call `observer` with every event as it is recorded (metrics); returns the undo."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    def record(self, actor: str, action: str, subject: str = "", /, **detail: Any) -> None:
        """Queue an event; it is chained and written with the next batch, in order."""
        event = Event(
            at=self._clock.now(),
            actor=actor,
            action=action,
            subject=self._redact(subject),
            # Scrubbed before it is serialised: JSON escapes (non-ASCII, quotes,
            # backslashes) would hide a value from a scrub of the serialised text.
            detail=redact_tree(detail, self._redact),
        )
        for observer in self._observers:
            observer(event)
        if not self._pending:
            events = self._pending
            self._writer.submit(lambda conn: self._append(conn, events), first=True)
        self._pending.append(event)

    def _append(self, conn: Connection, events: list[Event]) -> None:
        """Chain queued events onto the newest row: one read per batch, not per event."""
        if self._pending is events:
            self._pending = []  # later events start the next batch
        if not self._db.is_sqlite:
            conn.execute(text(f"SELECT pg_advisory_xact_lock({_PG_AUDIT_LOCK})"))
        # Read every batch (in the writer's thread): a CLI command such as `agentdeck
        # secret set` may have appended to the same SQLite file meanwhile.
        query = select(AuditEvent.hash).order_by(col(AuditEvent.id).desc()).limit(1)
        prev = conn.execute(query).scalar() or GENESIS
        for event in events:
            event.prev_hash = prev
            event.hash = prev = event_hash(prev, event)
        rows = [event.row() for event in events]
        table = AuditEvent.__table__  # type: ignore[attr-defined]
        if self._db.is_sqlite:
            batchsql.insert_many(conn, table, tuple(rows[0]), rows, or_ignore=False)
        else:
            conn.execute(insert(table), rows)

    async def tail(self, limit: int = 20) -> Sequence[AuditEvent]:
        async with self._db.session() as session:
            query = select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(limit)
            rows = (await session.exec(query)).all()
        return list(reversed(rows))

    async def verify(self) -> ChainCheck:
        """Walk the hash chain; say how many rows held and the first that does not."""
        prev, checked = GENESIS, 0
        async with self._db.session() as session:
            rows = await session.stream_scalars(select(AuditEvent).order_by(col(AuditEvent.id)))
            async for row in rows:
                if row.prev_hash != prev or event_hash(prev, row) != row.hash:
                    return ChainCheck(rows=checked, broken=row)
                prev, checked = row.hash, checked + 1
        return ChainCheck(rows=checked, broken=None)
