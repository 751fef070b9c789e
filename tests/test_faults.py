"""The classifier of database failures, fed real driver exceptions provoked for real.

Transient (wait and retry): a refused connection, a backend terminated by an
administrator, a server shutting down, SQLite's lock held by another connection, a
full database. Permanent (drop that one write): a constraint, a missing table, a value
of the wrong type.
"""

from __future__ import annotations

import asyncio
import errno
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from storage.db import async_url
from storage.faults import Fault, Pressure, classify, retrying
from tests.support.network import free_port
from tests.support.pgserver import PgServer
from tests.support.waiting import eventually


async def _raised(work: Callable[[], Awaitable[object]]) -> BaseException:
    try:
        await work()
    except Exception as exc:
        return exc
    raise AssertionError("expected the database call to fail")


def _engine(url: str):  # type: ignore[no-untyped-def]
    return create_async_engine(async_url(url), pool_pre_ping=True)


# -- PostgreSQL (asyncpg through SQLAlchemy) ------------------------------------------


async def test_a_refused_connection_is_transient() -> None:
    engine = _engine(f"postgresql://postgres@127.0.0.1:{free_port()}/x")  # nobody listens
    try:
        exc = await _raised(lambda: _select(engine))
    finally:
        await engine.dispose()
    assert isinstance(exc, ConnectionRefusedError)
    assert classify(exc) is Fault.UNREACHABLE


async def test_a_terminated_backend_is_transient(pg_url: str) -> None:
    """pg_terminate_backend during a query: AdminShutdown (57P01) under 08003."""
    engine = _engine(pg_url)
    try:
        async with engine.connect() as victim, engine.connect() as admin:
            pid = (await victim.execute(text("SELECT pg_backend_pid()"))).scalar()
            query = asyncio.create_task(victim.execute(text("SELECT pg_sleep(10)")))
            await eventually(lambda: _sleeping(admin, pid))
            await admin.execute(text(f"SELECT pg_terminate_backend({pid})"))
            exc = await _raised(lambda: query)
    finally:
        await engine.dispose()
    assert "AdminShutdownError" in _names(exc)
    assert classify(exc) is Fault.UNREACHABLE


async def test_a_deadlock_is_a_conflict_not_an_outage(pg_url: str) -> None:
    """Two transactions each update a row the other holds: one gets 40P01."""
    engine = _engine(pg_url)
    try:
        async with engine.begin() as setup:
            await setup.execute(text("CREATE TABLE pair (id int PRIMARY KEY, n int)"))
            await setup.execute(text("INSERT INTO pair VALUES (1, 0), (2, 0)"))
        async with engine.connect() as one, engine.connect() as two:
            await one.execute(text("UPDATE pair SET n = 1 WHERE id = 1"))
            await two.execute(text("UPDATE pair SET n = 2 WHERE id = 2"))
            blocked = asyncio.create_task(one.execute(text("UPDATE pair SET n = 1 WHERE id = 2")))
            crossed = asyncio.create_task(two.execute(text("UPDATE pair SET n = 2 WHERE id = 1")))
            results = await asyncio.gather(blocked, crossed, return_exceptions=True)
            await one.rollback()
            await two.rollback()
    finally:
        await engine.dispose()
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1
    assert "DeadlockDetectedError" in _names(failures[0])
    assert classify(failures[0]) is Fault.CONFLICT


async def test_a_constraint_a_missing_table_and_a_bad_value_are_permanent(pg_url: str) -> None:
    engine = _engine(pg_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id integer PRIMARY KEY)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
        for statement, driver_error in (
            ("INSERT INTO t VALUES (1)", "UniqueViolationError"),
            ("INSERT INTO missing VALUES (1)", "UndefinedTableError"),
            ("INSERT INTO t VALUES ('one')", "InvalidTextRepresentationError"),
        ):
            exc = await _raised(lambda s=statement: _execute(engine, s))  # type: ignore[misc]
            assert driver_error in _names(exc)
            assert classify(exc) is Fault.PERMANENT, statement
    finally:
        await engine.dispose()


@pytest.mark.slow
async def test_a_server_shutting_down_and_restarting_is_transient(pg_throwaway: PgServer) -> None:
    """CannotConnectNowError (57P03) reaches us as a bare DBAPIError, not an
    OperationalError: the writer dropped such writes. A fast restart cuts open sessions."""
    engine = _engine(pg_throwaway.url())
    try:
        async with engine.connect() as holding:
            await holding.execute(text("SELECT 1"))
            await asyncio.to_thread(pg_throwaway.begin_smart_stop)  # waits for `holding`
            exc = await _raised(lambda: _select(create_async_engine(async_url(pg_throwaway.url()))))
            assert "CannotConnectNowError" in _names(exc)
            assert classify(exc) is Fault.UNREACHABLE
        await engine.dispose()  # the pool's connection was the last session
        await asyncio.to_thread(_wait_stopped, pg_throwaway)
        await asyncio.to_thread(pg_throwaway.start)
        async with engine.connect() as cut:
            pid = (await cut.execute(text("SELECT pg_backend_pid()"))).scalar()
            query = asyncio.create_task(cut.execute(text("SELECT pg_sleep(10)")))
            async with engine.connect() as watch:  # closed before the restart cuts it
                await eventually(lambda: _sleeping(watch, pid))
            await asyncio.to_thread(pg_throwaway.restart, "fast")
            exc = await _raised(lambda: query)
        assert getattr(exc, "connection_invalidated", False)
        assert classify(exc) is Fault.UNREACHABLE
    finally:
        await engine.dispose()


async def _sleeping(conn, pid: int) -> bool:  # type: ignore[no-untyped-def]
    """Whether backend `pid` is inside its `pg_sleep` (the query to cut has begun)."""
    activity = text("SELECT query FROM pg_stat_activity WHERE pid = :pid AND state = 'active'")
    query = (await conn.execute(activity, {"pid": pid})).scalar()
    return query is not None and "pg_sleep" in query


def _wait_stopped(server: PgServer) -> None:
    import time

    for _ in range(200):
        if not server.running():
            return
        time.sleep(0.05)
    raise AssertionError("the throwaway server did not stop")


async def _select(engine) -> None:  # type: ignore[no-untyped-def]
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


async def _execute(engine: AsyncEngine, statement: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(statement))


def _names(exc: BaseException) -> set[str]:
    names: set[str] = set()
    current: BaseException | None = exc
    while current is not None and len(names) < 20:
        names.add(type(current).__name__)
        current = current.__cause__ or current.__context__
    return names


# -- SQLite ---------------------------------------------------------------------------------


def test_sqlite_locked_busy_and_full_are_transient_a_missing_table_is_not(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("CREATE TABLE t (id integer PRIMARY KEY)")
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.05})
    try:
        holder.execute("BEGIN IMMEDIATE")  # a second writer holds the lock
        busy = _sync_raised(engine, "INSERT INTO t VALUES (1)")
        holder.execute("ROLLBACK")
        assert _code(busy) == "SQLITE_BUSY"
        assert classify(busy) is Fault.UNREACHABLE

        for statement, expected in (
            ("INSERT INTO missing VALUES (1)", "SQLITE_ERROR"),
            ("INSERT INTO t VALUES (NULL), (1), (1)", "SQLITE_CONSTRAINT_PRIMARYKEY"),
        ):
            exc = _sync_raised(engine, statement)
            assert _code(exc) == expected
            assert classify(exc) is Fault.PERMANENT

        with engine.begin() as conn:  # the database may not grow: full
            conn.exec_driver_sql("PRAGMA max_page_count=3")
            full = _sync_raised_on(conn, "CREATE TABLE big AS SELECT randomblob(20000) AS b")
        assert _code(full) == "SQLITE_FULL"
        assert classify(full) is Fault.FULL
    finally:
        engine.dispose()
        holder.close()

    reading = sqlite3.connect(tmp_path / "other.sqlite", isolation_level=None)
    reading.execute("CREATE TABLE t (x)")
    reading.execute("INSERT INTO t VALUES (1), (2)")
    cursor = reading.execute("SELECT x FROM t")
    cursor.fetchone()
    with pytest.raises(sqlite3.OperationalError) as locked:  # a statement still reads it
        reading.execute("DROP TABLE t")
    reading.close()
    assert locked.value.sqlite_errorname == "SQLITE_LOCKED"
    assert classify(locked.value) is Fault.UNREACHABLE


def _sync_raised(engine, statement: str) -> BaseException:  # type: ignore[no-untyped-def]
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(statement)
    except Exception as exc:
        return exc
    raise AssertionError(f"expected {statement!r} to fail")


def _sync_raised_on(conn, statement: str) -> BaseException:  # type: ignore[no-untyped-def]
    try:
        conn.exec_driver_sql(statement)
    except Exception as exc:
        return exc
    raise AssertionError(f"expected {statement!r} to fail")


def _code(exc: BaseException) -> str:
    orig = getattr(exc, "orig", exc)
    return str(getattr(orig, "sqlite_errorname", ""))


def test_a_full_disk_and_plain_bugs() -> None:
    assert classify(OSError(errno.ENOSPC, "No space left on device")) is Fault.FULL
    assert classify(ConnectionResetError(errno.ECONNRESET, "reset")) is Fault.UNREACHABLE
    assert classify(TypeError("not a date")) is Fault.PERMANENT
    assert classify(KeyError("id")) is Fault.PERMANENT


# -- the retry loop for direct writes ------------------------------------------------


async def test_retrying_waits_out_transient_failures_and_raises_permanent_ones() -> None:
    failures: list[BaseException] = [
        OSError(errno.ENOSPC, "No space left on device"),
        ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
    ]
    changes: list[bool] = []
    pressure = Pressure()
    pressure.listen(lambda full, _detail: changes.append(full))

    async def attempt() -> str:
        if failures:
            raise failures.pop(0)
        return "stored"

    assert await retrying(attempt, "a test write", pressure=pressure) == "stored"
    assert changes == [True, False]  # full once, through once

    async def refused() -> str:
        raise TypeError("a bug")

    with pytest.raises(TypeError):
        await retrying(refused, "a bad write")
