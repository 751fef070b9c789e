"""Group commit: many small writes from many conversations, one transaction per batch.

At hundreds of messages a second a commit per row would make the database the
bottleneck; queued writes are applied in order, in one transaction, as soon as the
previous batch is done. `write()` waits for the commit (use it where durability
matters, like the inbox before an update is acknowledged); `submit()` does not.

Plain inserts (`insert()`) are grouped per table into one executemany and run first in
their batch, before the other operations in the order they were submitted: an update
may follow the insert of its row in the same batch, never the other way round. An
insert may ignore rows whose key is taken already (the inbox's redelivered updates).

Nothing the bot depends on is dropped (`storage.faults` tells the kinds of failure
apart): while the database is unreachable, locked or full, the batch waits and is
tried again, as long as it takes. A write the database refuses for what it is (a
missing table, a constraint) is found by trying the batch's writes one by one: it
alone fails — its future raises `WriteFailed`, it is logged once — and the others
commit. On SQLite the writer's thread checkpoints the WAL once the queue is idle, so
a quiet bot's WAL stays small.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy import Connection, bindparam, insert
from sqlmodel import SQLModel

from storage import batchsql
from storage.db import Database
from storage.errors import WriteFailed
from storage.faults import Backoff, Fault, classify, first_line, said

log = logging.getLogger(__name__)

GIVE_UP_WHEN_STOPPING_SECONDS = 30.0
# A batch nobody waits for gathers writes this long: a message's run rows, audit events
# and memory then share one commit instead of three (fewer hand-offs to the writer).
LINGER_SECONDS = 0.003
IDLE_CHECKPOINT_SECONDS = 1.0  # SQLite: the WAL is checkpointed after this long without writes
_PRESSURE_NAME = "write-behind"

# A queued write: plain SQLAlchemy Core on a connection inside the batch's transaction
# (it runs in a writer thread on SQLite, through the async driver on PostgreSQL).
Op = Callable[[Connection], None]
Done = asyncio.Future[None]

_InsertShape = tuple[type[SQLModel], tuple[str, ...], bool]  # table, columns, ignore conflict
_Shape = tuple[type[SQLModel], str, tuple[str, ...]]  # table, key column, columns


@dataclass(slots=True)
class _Batch:
    """Writes queued together, each with the future its submitter holds."""

    settled: Done  # every write in it committed or failed (what `flush` waits for)
    inserts: dict[_InsertShape, list[tuple[dict[str, Any], Done]]] = field(default_factory=dict)
    updates: dict[_Shape, list[tuple[dict[str, Any], Done]]] = field(default_factory=dict)
    ops: list[tuple[Op, Done]] = field(default_factory=list)
    first: list[tuple[Op, Done]] = field(default_factory=list)  # run before everything else

    def futures(self) -> list[Done]:
        found = [done for _, done in self.first]
        found += [done for rows in self.inserts.values() for _, done in rows]
        found += [done for rows in self.updates.values() for _, done in rows]
        return found + [done for _, done in self.ops]


@dataclass(frozen=True, slots=True)
class _Unit:
    """One write of a batch, tried alone once its batch was refused."""

    op: Op
    done: Done
    shown: str  # what the log says it was


class WriteBehind:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._queued: _Batch | None = None
        self._inflight: _Batch | None = None  # the batch being committed
        self._wake = asyncio.Event()
        self._hurry = asyncio.Event()  # somebody waits for the queued batch: no lingering
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._unchecked = False  # SQLite: committed since the last idle checkpoint

    async def __aenter__(self) -> WriteBehind:
        self._task = asyncio.create_task(self._run(), name="storage-writer")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stopping = True
        self._wake.set()
        if self._task:
            await self._task

    # -- queueing -------------------------------------------------------------------

    def submit(self, op: Op, *, urgent: bool = False, first: bool = False) -> Done:
        """Queue a write; the returned future resolves once it is committed, or raises
        `WriteFailed` if the database refused it.

        `urgent`: the caller will wait for it, so the batch goes without lingering.
        `first`: the write takes a lock every process's batches contend for (the audit
        chain's head); it runs before the batch's other writes, so a batch holding row
        locks never waits for it while another holds it and waits for those rows."""
        done = self._future()
        (self._batch().first if first else self._batch().ops).append((op, done))
        self._queued_one(urgent)
        return done

    def insert(
        self,
        table: type[SQLModel],
        row: dict[str, Any],
        *,
        or_ignore: bool = False,
        urgent: bool = False,
    ) -> Done:
        """Queue a plain row insert (cheaper than an ORM object: no session bookkeeping).

        With `or_ignore`, a row whose primary key exists already is skipped."""
        # Rows of one shape share an executemany; a row missing a key gets its own group.
        shape = (table, tuple(sorted(row)), or_ignore)
        done = self._future()
        self._batch().inserts.setdefault(shape, []).append((row, done))
        self._queued_one(urgent)
        return done

    def update(
        self, table: type[SQLModel], key: str, row: dict[str, Any], *, urgent: bool = False
    ) -> Done:
        """Queue an update of the row whose `key` column equals `row[key]`; same-shaped
        updates of one batch become one executemany, run after the batch's inserts."""
        shape = (table, key, tuple(sorted(row)))
        done = self._future()
        self._batch().updates.setdefault(shape, []).append((row, done))
        self._queued_one(urgent)
        return done

    async def write(self, op: Op) -> None:
        await self.submit(op, urgent=True)

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed or has failed (a write that
        failed raises through its own future and is logged, not here)."""
        self._hurry.set()
        last = self._queued or self._inflight
        if last is not None:
            await asyncio.shield(last.settled)

    def _future(self) -> Done:
        return asyncio.get_running_loop().create_future()

    def _batch(self) -> _Batch:
        if self._queued is None:
            self._queued = _Batch(self._future())
        return self._queued

    def _queued_one(self, urgent: bool) -> None:
        if urgent:
            self._hurry.set()
        self._wake.set()

    # -- committing -----------------------------------------------------------------

    async def _run(self) -> None:
        while not (self._stopping and self._queued is None):  # a stop drains the queue first
            await self._idle()
            self._wake.clear()
            if self._queued is None:
                continue
            await self._linger()
            self._hurry.clear()
            batch, self._queued = self._queued, None
            self._inflight = batch
            try:
                await self._apply(batch)
            finally:
                self._inflight = None
                _settle(batch.settled)

    async def _idle(self) -> None:
        """Wait for work; on SQLite, checkpoint the WAL once nothing came for a while."""
        if not self._unchecked:
            await self._wake.wait()
            return
        try:
            async with asyncio.timeout(IDLE_CHECKPOINT_SECONDS):
                await self._wake.wait()
        except TimeoutError:
            self._unchecked = False
            await self._checkpoint()
            await self._wake.wait()

    async def _linger(self) -> None:
        if self._hurry.is_set() or self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LINGER_SECONDS):
                await self._hurry.wait()

    async def _apply(self, batch: _Batch) -> None:
        """Commit a batch; wait out an unreachable or full database; isolate a bad write."""
        work = _whole(batch, self._db)
        failure = await self._commit_patiently(work, f"{len(batch.futures())} writes")
        if failure is None:
            for done in batch.futures():
                _settle(done)
            self._unchecked = self._db.is_sqlite
            return
        if classify(failure) is not Fault.PERMANENT:  # gave up at shutdown
            log.error("the database is still unreachable at shutdown; %s", _lost(batch))
            for done in batch.futures():
                _fail(done, failure)
            return
        # One bad write must not take the rest of the batch with it.
        for unit in _units(batch, self._db):
            await self._apply_alone(unit)

    async def _apply_alone(self, unit: _Unit) -> None:
        failure = await self._commit_patiently(unit.op, unit.shown)
        if failure is None:
            _settle(unit.done)
            return
        if classify(failure) is Fault.PERMANENT:
            log.error(
                "the database refused a queued write, which is dropped: %s (%s)",
                unit.shown,
                first_line(failure),
            )
        else:
            log.error("the database is still unreachable at shutdown; lost: %s", unit.shown)
        _fail(unit.done, failure)

    async def _commit_patiently(self, work: Op, what: str) -> Exception | None:
        """Commit `work`; None once it is committed, or the error that ends trying.

        Transient failures are retried with a doubling pause, as long as it takes (at
        shutdown, for a while); a permanent one is returned at once.
        """
        backoff: Backoff | None = None
        while True:
            try:
                await self._db.write_batch(work)
            except Exception as exc:
                fault = classify(exc)
                if fault is Fault.PERMANENT:
                    return exc
                backoff = backoff or Backoff()
                if self._stopping and backoff.waited >= GIVE_UP_WHEN_STOPPING_SECONDS:
                    return exc
                await self._wait(exc, fault, backoff, what)
                continue
            if backoff is not None:
                self._recovered(backoff, what)
            return None

    async def _wait(self, exc: Exception, fault: Fault, backoff: Backoff, what: str) -> None:
        if fault is Fault.FULL:
            self._db.pressure.full_for(_PRESSURE_NAME, first_line(exc))
        if fault is Fault.CONFLICT:
            backoff.conflicts += 1
        if backoff.should_log():
            log.warning("%s (%s); %s wait and are tried again", said(fault), first_line(exc), what)
        if fault is Fault.FULL:
            await self._checkpoint()  # a WAL that filled the disk may give space back
        await backoff.sleep()

    def _recovered(self, backoff: Backoff, what: str) -> None:
        if backoff.conflicts == backoff.attempts:  # only deadlocks: the database was fine
            log.warning(
                "deadlock, tried again: %s went through after %.1f s (%d retries)",
                what,
                backoff.waited,
                backoff.attempts,
            )
            return
        log.warning(
            "the database took the queued writes again after %.1f s (%d retries): %s",
            backoff.waited,
            backoff.attempts,
            what,
        )
        self._db.pressure.through(_PRESSURE_NAME)

    async def _checkpoint(self) -> None:
        try:
            await self._db.checkpoint()
        except Exception as exc:  # the next idle moment tries again
            log.debug("WAL checkpoint failed: %s", first_line(exc))


def _settle(done: Done) -> None:
    if not done.done():
        done.set_result(None)


def _fail(done: Done, cause: Exception) -> None:
    if done.done():
        return
    error = WriteFailed(first_line(cause))
    error.__cause__ = cause
    done.set_exception(error)
    done.exception()  # logged here already; nobody need await it to stop asyncio's warning


def _lost(batch: _Batch) -> str:
    return f"{len(batch.futures())} writes are lost"


# -- statements ------------------------------------------------------------------------


def _whole(batch: _Batch, db: Database) -> Op:
    """The batch as one transaction: the `first` writes, bulk inserts, bulk updates, then
    the other writes."""
    leading = [op for op, _ in batch.first]
    inserts = {shape: [row for row, _ in rows] for shape, rows in batch.inserts.items()}
    updates = {shape: [row for row, _ in rows] for shape, rows in batch.updates.items()}
    bulk = _bulk(inserts, updates, db)
    ops = [op for op, _ in batch.ops]

    def work(conn: Connection) -> None:
        for op in leading:
            op(conn)
        bulk(conn)
        for op in ops:
            op(conn)

    return work


def _units(batch: _Batch, db: Database) -> list[_Unit]:
    """The batch's writes one by one, in the order the batch runs them."""
    units = [_Unit(op, done, f"operation {_name_of(op)}") for op, done in batch.first]
    for shape, rows in batch.inserts.items():
        for row, done in rows:
            op = _bulk({shape: [row]}, {}, db)
            units.append(_Unit(op, done, _shown("insert into", shape[0], row)))
    for update_shape, rows in batch.updates.items():
        for row, done in rows:
            op = _bulk({}, {update_shape: [row]}, db)
            units.append(_Unit(op, done, _shown("update of", update_shape[0], row)))
    units += [_Unit(op, done, f"operation {_name_of(op)}") for op, done in batch.ops]
    return units


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
            # In key order: two processes updating the same rows lock them in one order.
            in_order = sorted(rows, key=partial(_order_of, key))
            statement = (
                sa_table.update()
                .where(sa_table.c[key] == bindparam(f"_{key}"))
                .values({c: bindparam(f"_{c}") for c in columns if c != key})
            )
            conn.execute(statement, [{f"_{c}": v for c, v in r.items()} for r in in_order])

    return op


def _order_of(key: str, row: dict[str, Any]) -> tuple[str, str]:
    """A sort key for any key value: any fixed order will do, as long as both take it."""
    value = row[key]
    return (type(value).__name__, str(value))


SHOWN_CHARS = 80


def _shown(what: str, table: type[SQLModel], row: dict[str, Any]) -> str:
    """A row for the log: short values in full, long text cut, JSON only by its size.

    Payloads (an update's text, a run's state) may hold a value typed for `/secret set`
    before the vault knows it, so they are never written out; the log's redaction
    scrubs the values the vault knows.
    """
    name = getattr(table, "__tablename__", table.__name__)
    return f"{what} {name} " + ", ".join(f"{k}={_value(v)}" for k, v in sorted(row.items()))


def _value(value: object) -> str:
    if isinstance(value, (dict, list, tuple)):
        return f"<{type(value).__name__} of {len(value)}>"
    shown = repr(value)
    return shown if len(shown) <= SHOWN_CHARS else shown[: SHOWN_CHARS - 1] + "…"


def _name_of(op: Op) -> str:
    return getattr(op, "__qualname__", None) or type(op).__name__
