"""A PostgreSQL advisory lock held on a connection of its own: who runs the scheduler.

The lock lives as long as the database session that took it, so a process that dies
(or loses its connection) lets it go by itself, and another process can take over.
On SQLite there is one process per database file, which always holds the lock.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Database

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5.0
_HELD = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND pid = pg_backend_pid() AND ((classid::bigint << 32) | objid::bigint) = :key"
)


class AdvisoryLock:
    def __init__(self, db: Database, key: int) -> None:
        self._db = db
        self._key = key
        self._conn: AsyncConnection | None = None
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    async def try_acquire(self) -> bool:
        """Take the lock if it is free; never waits for it."""
        if self._db.is_sqlite:
            self._held = True
            return True
        try:
            async with asyncio.timeout(TIMEOUT_SECONDS):
                conn = await self._connection()
                row = await conn.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
                )
                self._held = bool(row.scalar())
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            log.warning("could not ask for the scheduler lock: %s", exc)
            await self._drop()
        return self._held

    async def still_held(self) -> bool:
        """Check on the lock's own connection that the lock is still ours."""
        if self._db.is_sqlite or not self._held:
            return self._held
        try:
            async with asyncio.timeout(TIMEOUT_SECONDS):
                assert self._conn is not None
                row = await self._conn.execute(_HELD, {"key": self._key})
                self._held = bool(row.scalar())
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            log.warning("lost the scheduler lock's connection: %s", exc)
            await self._drop()
        return self._held

    async def release(self) -> None:
        if self._conn is not None and self._held:
            try:
                async with asyncio.timeout(TIMEOUT_SECONDS):
                    await self._conn.execute(
                        text("SELECT pg_advisory_unlock(:key)"), {"key": self._key}
                    )
            except (SQLAlchemyError, OSError, TimeoutError):
                log.warning("could not release the scheduler lock; closing its connection")
        await self._drop()

    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            conn = await self._db.engine.connect()
            # Autocommit: a session lock needs no transaction, and an idle open
            # transaction held for days would hold back vacuum.
            self._conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    async def _drop(self) -> None:
        self._held = False
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                async with asyncio.timeout(TIMEOUT_SECONDS):
                    await conn.close()
            except (SQLAlchemyError, OSError, TimeoutError):
                await conn.invalidate()
