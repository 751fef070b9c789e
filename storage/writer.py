"""Group commit: many small writes from many conversations, one transaction per batch.

At hundreds of messages a second a commit per row would make the database the
bottleneck; queued writes are applied in order, in one transaction, as soon as the
previous batch is done. `write()` waits for the commit (use it where durability
matters, like the inbox before an update is acknowledged); `submit()` does not.

Plain inserts (`insert()`) are grouped per table into one executemany and run first in
their batch, before the other operations in the order they were submitted: an update
may follow the insert of its row in the same batch, never the other way round. An
insert may ignore rows whose key is taken already (the inbox's redelivered updates).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, bindparam, insert
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlmodel import SQLModel

from storage import batchsql
from storage.db import Database

log = logging.getLogger(__name__)

RETRY_FIRST_SECONDS = 0.1
RETRY_MAX_SECONDS = 5.0
GIVE_UP_WHEN_STOPPING_SECONDS = 30.0
# A batch nobody waits for gathers writes this long: a message's run rows, audit events
# and memory then share one commit instead of three (fewer hand-offs to the writer).
LINGER_SECONDS = 0.003
# The database is down or restarting, not refusing this write: wait and try again.
_UNREACHABLE = (OperationalError, InterfaceError, OSError)

# A queued write: plain SQLAlchemy Core on a connection inside the batch's transaction
# (it runs in a writer thread on SQLite, through the async driver on PostgreSQL).
Op = Callable[[Connection], None]


class WriteBehind:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._ops: list[Op] = []
        self._inserts: dict[_InsertShape, list[dict[str, Any]]] = {}
        self._updates: dict[_Shape, list[dict[str, Any]]] = {}
        self._batch_done: asyncio.Future[None] | None = None  # the queued batch
        self._inflight: asyncio.Future[None] | None = None  # the batch being committed
        self._wake = asyncio.Event()
        self._hurry = asyncio.Event()  # somebody waits for the queued batch: no lingering
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def __aenter__(self) -> WriteBehind:
        self._task = asyncio.create_task(self._run(), name="storage-writer")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stopping = True
        self._wake.set()
        if self._task:
            await self._task

    def submit(self, op: Op, *, urgent: bool = False) -> asyncio.Future[None]:
        """Queue a write; the returned future resolves once it is committed.

        `urgent`: the caller will wait for it, so the batch goes without lingering."""
        if self._batch_done is None:
            self._batch_done = asyncio.get_running_loop().create_future()
        self._ops.append(op)
        if urgent:
            self._hurry.set()
        self._wake.set()
        return self._batch_done

    def insert(
        self,
        table: type[SQLModel],
        row: dict[str, Any],
        *,
        or_ignore: bool = False,
        urgent: bool = False,
    ) -> asyncio.Future[None]:
        """Queue a plain row insert (cheaper than an ORM object: no session bookkeeping).

        With `or_ignore`, a row whose primary key exists already is skipped."""
        # Rows of one shape share an executemany; a row missing a key gets its own group.
        shape = (table, tuple(sorted(row)), or_ignore)
        self._inserts.setdefault(shape, []).append(row)
        return self.submit(_nothing, urgent=urgent)

    def update(
        self, table: type[SQLModel], key: str, row: dict[str, Any], *, urgent: bool = False
    ) -> asyncio.Future[None]:
        """Queue an update of the row whose `key` column equals `row[key]`; same-shaped
        updates of one batch become one executemany, run after the batch's inserts."""
        shape = (table, key, tuple(sorted(row)))
        self._updates.setdefault(shape, []).append(row)
        return self.submit(_nothing, urgent=urgent)

    async def write(self, op: Op) -> None:
        await self.submit(op, urgent=True)

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed."""
        self._hurry.set()
        last = self._batch_done or self._inflight
        if last is not None:
            await asyncio.shield(last)

    async def _run(self) -> None:
        while not (self._stopping and not self._ops):  # a stop drains the queue first
            await self._wake.wait()
            self._wake.clear()
            if self._ops:
                await self._linger()
                self._hurry.clear()
                bulk = _bulk(self._inserts, self._updates, self._db)
                ops, done = [bulk, *self._ops], self._batch_done
                self._ops, self._inserts, self._updates = [], {}, {}
                self._batch_done, self._inflight = None, done
                await self._apply(ops)
                self._inflight = None
                if done is not None and not done.done():
                    done.set_result(None)

    async def _linger(self) -> None:
        if self._hurry.is_set() or self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LINGER_SECONDS):
                await self._hurry.wait()

    async def _apply(self, ops: list[Op]) -> None:
        """Commit a batch; wait out an unreachable database; isolate a bad write."""
        delay = RETRY_FIRST_SECONDS
        waited = 0.0
        while True:
            try:
                await self._commit(ops)
                return
            except _UNREACHABLE as exc:
                if self._stopping and waited >= GIVE_UP_WHEN_STOPPING_SECONDS:
                    log.error("database still unreachable at shutdown; %d writes lost", len(ops))
                    return
                log.warning(
                    "database unreachable (%s); retrying in %.1f s", _first_line(exc), delay
                )
                await asyncio.sleep(delay)
                waited += delay
                delay = min(delay * 2, RETRY_MAX_SECONDS)
            except SQLAlchemyError:
                break
        # One bad write must not take the rest of the batch with it.
        for op in ops:
            try:
                await self._commit([op])
            except SQLAlchemyError:
                log.exception("a queued database write failed and was dropped")

    async def _commit(self, ops: list[Op]) -> None:
        def run_all(conn: Connection) -> None:
            for op in ops:
                op(conn)

        await self._db.write_batch(run_all)


def _nothing(_conn: Connection) -> None:
    return None


_InsertShape = tuple[type[SQLModel], tuple[str, ...], bool]  # table, columns, ignore conflict
_Shape = tuple[type[SQLModel], str, tuple[str, ...]]


def _bulk(
    inserts: dict[_InsertShape, list[dict[str, Any]]],
    updates: dict[_Shape, list[dict[str, Any]]],
    db: Database,
) -> Op:
    """Core statements, not ORM objects: one executemany per table and shape."""

    def op(conn: Connection) -> None:
        for (table, columns, or_ignore), rows in inserts.items():
            sa_table = table.__table__  # type: ignore[attr-defined]
            if db.is_sqlite:
                batchsql.insert_many(conn, sa_table, columns, rows, or_ignore=or_ignore)
                continue
            statement: Any = insert(sa_table)
            if or_ignore:
                statement = db.insert(sa_table).on_conflict_do_nothing()
            conn.execute(statement, rows)
        for (table, key, columns), rows in updates.items():
            sa_table = table.__table__  # type: ignore[attr-defined]
            if db.is_sqlite:
                batchsql.update_many(conn, sa_table, key, columns, rows)
                continue
            statement = (
                sa_table.update()
                .where(sa_table.c[key] == bindparam(f"_{key}"))
                .values({c: bindparam(f"_{c}") for c in columns if c != key})
            )
            conn.execute(statement, [{f"_{c}": v for c, v in r.items()} for r in rows])

    return op


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
