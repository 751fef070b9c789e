"""Storage: migrations agree with the models, SQLite in WAL, PostgreSQL by URL, the audit chain."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import text
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (the tables)
from bot.cli import main
from storage.audit import AuditLog
from storage.clock import FakeClock
from storage.db import Database, sqlite_url, upgrade_to_head
from storage.migrations import HEAD_REVISION, alembic_config
from storage.writer import WriteBehind


def test_head_revision_constant_matches_the_scripts() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION


async def schema_differences(url: str) -> list[object]:
    """Replay every migration on an empty database; how the result differs from the models."""
    db = Database(url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(upgrade_to_head)
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), SQLModel.metadata)
            )
    finally:
        await db.engine.dispose()
    return list(diff)


async def test_migrations_match_models_on_sqlite(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    assert await schema_differences(sqlite_url(data_dir)) == []


async def test_migrations_match_models_on_postgresql(pg_url: str) -> None:
    assert await schema_differences(pg_url) == []


async def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(data_dir: Path) -> None:
    async with Database(sqlite_url(data_dir)) as db, db.engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 30_000
    assert (data_dir / "agentdeck.db").exists()


async def test_second_start_skips_migrations(data_dir: Path) -> None:
    async with Database(sqlite_url(data_dir)) as db:
        assert await db.current_revision() == HEAD_REVISION
    async with Database(sqlite_url(data_dir)) as db:
        assert await db.current_revision() == HEAD_REVISION


async def test_unreachable_database_is_one_clear_error() -> None:
    from storage.errors import DatabaseUnavailable

    with pytest.raises(
        DatabaseUnavailable,
        match=r"^Cannot open the database postgresql\+asyncpg://nobody@127.0.0.1:1/none",
    ):
        async with Database("postgresql://nobody@127.0.0.1:1/none"):
            pass


async def write_events(url: str, count: int) -> tuple[int, object]:
    """Record `count` audit events; what verifying the chain then finds (rows, broken)."""
    async with Database(url) as db, WriteBehind(db) as writer:
        log = AuditLog(db=db, writer=writer, clock=FakeClock())
        for n in range(count):
            log.record("test:admin", "command", "status", n=n, action="nested key named action")
        await writer.flush()
        check = await log.verify()
    return check.rows, check.broken


def test_audit_chain_verifies_and_finds_tampering(data_dir: Path) -> None:
    url = sqlite_url(data_dir)
    assert asyncio.run(write_events(url, 5)) == (5, None)
    runner = CliRunner()
    ok = runner.invoke(main, ["audit", "verify"])
    assert (ok.exit_code, ok.output.strip()) == (0, "audit chain intact: 5 rows checked")
    tail = runner.invoke(main, ["audit", "tail", "-n", "2"])
    assert tail.output.count("test:admin command status") == 2
    asyncio.run(tamper(url))
    bad = runner.invoke(main, ["audit", "verify"])
    assert bad.exit_code == 1
    assert "audit chain broken at row 3 (command by mallory)" in bad.output


async def tamper(url: str) -> None:
    async with Database(url) as db, db.engine.begin() as conn:
        await conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE id = 3"))


async def test_audit_chain_on_postgresql(pg_url: str) -> None:
    assert await write_events(pg_url, 20) == (20, None)


async def test_two_processes_migrating_a_fresh_postgresql_at_once(pg_url: str) -> None:
    first, second = Database(pg_url), Database(pg_url)
    async with asyncio.timeout(60):
        await asyncio.gather(first.__aenter__(), second.__aenter__())
    try:
        assert await first.current_revision() == await second.current_revision() == HEAD_REVISION
    finally:
        await first.__aexit__(None, None, None)
        await second.__aexit__(None, None, None)


async def test_an_inbox_write_that_failed_leaves_its_updates_new(data_dir: Path) -> None:
    """A failed store must not mark updates seen: the platform delivers them again, and
    then they are new (never skipped as handled)."""
    from datetime import UTC, datetime

    from sqlalchemy.exc import OperationalError

    from storage.inbox import Inbox

    async with Database(sqlite_url(data_dir)) as db, WriteBehind(db) as writer:
        inbox = Inbox(db=db, writer=writer, clock=FakeClock(datetime(2026, 1, 1, tzinfo=UTC)))
        async with db.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE inbox RENAME TO inbox_away"))
        with pytest.raises(OperationalError):
            await inbox.accept([("t:1", {})])
        assert inbox.accept_quickly([("t:1", {})]) is None  # not trusted: nothing stored
        async with db.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE inbox_away RENAME TO inbox"))
        assert await inbox.accept([("t:1", {})]) == {"t:1"}
        quick = inbox.accept_quickly([("t:1", {}), ("t:2", {})])
        assert quick is not None
        fresh, stored = quick
        await stored
        assert fresh == {"t:2"}


async def test_an_inbox_store_retried_after_a_lost_answer_counts_its_own_rows_new(
    data_dir: Path,
) -> None:
    """The connection broke after the commit: the retry finds the rows stored. Those
    with this call's exact time and owner are its own (new); a redelivery's are not."""
    from datetime import UTC, datetime, timedelta

    from storage.inbox import Inbox

    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    async with Database(sqlite_url(data_dir)) as db, WriteBehind(db) as writer:
        inbox = Inbox(db=db, writer=writer, clock=clock)
        assert await inbox.accept([("t:old", {})]) == {"t:old"}
        clock.advance(timedelta(seconds=1))
        now = clock.now()
        lost: list[dict[str, Any]] = [
            {"key": "t:1", "payload": {}, "received_at": now, "owner": None}
        ]
        assert await inbox._store(lost, now, retried=False) == {"t:1"}  # the lost answer
        rows = [*lost, {"key": "t:old", "payload": {}, "received_at": now, "owner": None}]
        assert await inbox._store(rows, now, retried=True) == {"t:1"}


async def test_a_caller_gone_mid_insert_leaves_the_others_of_its_batch_stored_and_answered(
    data_dir: Path,
) -> None:
    """Webhook calls arriving together share one insert; one of them cancelled while it
    waits (its HTTP request gone) must not cut the insert short for the rest."""
    import sqlite3
    from datetime import UTC, datetime

    from storage.inbox import Inbox

    async with Database(sqlite_url(data_dir)) as db, WriteBehind(db) as writer:
        inbox = Inbox(db=db, writer=writer, clock=FakeClock(datetime(2026, 1, 1, tzinfo=UTC)))
        holder = sqlite3.connect(data_dir / "agentdeck.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # the insert waits for this write lock
        gone = asyncio.create_task(inbox.accept([("t:1", {})]))
        staying = asyncio.create_task(inbox.accept([("t:2", {})]))
        await asyncio.sleep(0.3)
        gone.cancel()
        await asyncio.sleep(0.1)
        holder.execute("COMMIT")
        holder.close()
        assert await staying == {"t:2"}
        with pytest.raises(asyncio.CancelledError):
            await gone
        async with db.engine.connect() as conn:
            keys = (await conn.execute(text("SELECT key FROM inbox ORDER BY key"))).scalars()
            assert list(keys) == ["t:1", "t:2"]
