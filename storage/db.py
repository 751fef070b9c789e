"""The database: one async engine, SQLite (WAL) by default or PostgreSQL by URL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.errors import DatabaseUnavailable
from storage.faults import Pressure
from storage.migrations import HEAD_REVISION
from storage.pgpool import postgres_engine
from storage.private import private_dir, private_file, tighten
from storage.worker import ThreadWorker

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert

# What a database call raises when the database fails: SQLAlchemy's errors and a broken
# socket. Code outside storage catches these without importing SQLAlchemy itself.
DATABASE_ERRORS = (SQLAlchemyError, OSError)

SQLITE_BUSY_TIMEOUT_MS = 30_000
# The WAL is copied into the database once it holds this many pages (4 KiB each), and cut
# back to this size when it starts over: SQLite's defaults (1,000 pages, no limit) let it
# grow to 4 MB after some forty messages and stay that size on disk.
SQLITE_WAL_AUTOCHECKPOINT_PAGES = 256
SQLITE_JOURNAL_SIZE_LIMIT = 1 << 20
T = TypeVar("T")
_PG_MIGRATION_LOCK = 7_402_002


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{data_dir / 'agentdeck.db'}"


def async_url(url: str) -> str:
    """Pick the async driver for a plain URL (`postgresql://` -> asyncpg)."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("sqlite:///", "sqlite+aiosqlite:///"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


class Database:
    """Owns the engine; `async with Database(url)` connects and migrates to the newest schema."""

    def __init__(self, url: str) -> None:
        self.url = async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.engine: AsyncEngine = self._create_engine()
        self._write_lock: asyncio.Lock | None = None
        self._batch_engine: Engine | None = None  # SQLite: batches written in one thread hop
        self._writer_thread = ThreadWorker("sqlite-writer")
        self._read_engine: Engine | None = None  # SQLite: hot-path reads in one thread hop
        self._reader_thread = ThreadWorker("sqlite-reader")
        self.pressure = Pressure()  # writes waiting for disk space, told to who listens
        self.created = False  # whether opening it created its schema: a deck's first start

    def _create_engine(self) -> AsyncEngine:
        if not self.is_sqlite:
            return postgres_engine(self.url)
        engine = create_async_engine(
            self.url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine

    async def __aenter__(self) -> Database:
        try:
            await self.migrate()
        except (OperationalError, OSError) as exc:
            await self.engine.dispose()
            raise DatabaseUnavailable(self.display_url, str(exc).splitlines()[0]) from exc
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.engine.dispose()
        self._writer_thread.stop()
        self._reader_thread.stop()
        for sync_engine in (self._batch_engine, self._read_engine):
            if sync_engine is not None:
                sync_engine.dispose()

    def insert(self, table: Any) -> SqliteInsert | PostgresInsert:
        """`INSERT` with this database's `ON CONFLICT` clauses (SQLite's or PostgreSQL's).

        The dialect is imported when first used: a SQLite deck never loads PostgreSQL's
        (about 20 ms and 2 MB at start).
        """
        if self.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table)
        from sqlalchemy.dialects.postgresql import insert as postgres_insert

        return postgres_insert(table)

    @property
    def display_url(self) -> str:
        """The URL without a password, for messages and logs."""
        return self.engine.url.render_as_string(hide_password=True)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with AsyncSession(self.engine, expire_on_commit=False) as session:
            yield session

    @asynccontextmanager
    async def write_session(self) -> AsyncIterator[AsyncSession]:
        """A session for the hot write paths, taken one at a time on SQLite.

        SQLite allows one writer; a second one sleeps in SQLite's busy handler, in steps of
        up to tens of milliseconds, even when the lock frees a moment later. Queueing our
        own writers on an asyncio lock instead hands the lock over at once.
        """
        if not self.is_sqlite:
            async with self.session() as session:
                yield session
            return
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        async with self._write_lock, self.session() as session:
            yield session

    @asynccontextmanager
    async def statement_alone(self) -> AsyncIterator[AsyncConnection]:
        """A connection for writes that are each atomic alone (one `INSERT … RETURNING`, one
        `UPDATE`): on PostgreSQL in autocommit, one round trip each instead of three
        (`BEGIN`, the statement, `COMMIT`); on SQLite a transaction taken one at a time
        (`write_session`), committed at the end."""
        if not self.is_sqlite:
            async with self.engine.connect() as conn:
                yield await conn.execution_options(isolation_level="AUTOCOMMIT")
            return
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        async with self._write_lock, self.engine.begin() as conn:
            yield conn

    async def write_batch(self, work: Callable[[Connection], None]) -> None:
        """Run `work` in one transaction and commit it.

        On SQLite the whole batch runs in a writer thread of its own, in one hop: through
        aiosqlite every statement is several hand-offs between the event loop and the
        driver's thread, and those hand-offs (not SQLite) were most of the loop's time
        per message. On PostgreSQL the async driver runs it, no thread needed.
        """
        if not self.is_sqlite:
            async with self.engine.begin() as conn:
                await conn.run_sync(work)
            return
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        if self._batch_engine is None:
            self._batch_engine = self._sync_engine()  # no connection yet: made here, used there
        async with self._write_lock:
            await self._writer_thread.run(lambda: self._write_in_thread(work))

    def _write_in_thread(self, work: Callable[[Connection], None]) -> None:
        assert self._batch_engine is not None
        with self._batch_engine.begin() as conn:
            work(conn)

    async def checkpoint(self) -> None:
        """SQLite: copy the WAL into the database and truncate it, waiting for nobody.

        Runs in the writer's thread. A reader or another process's writer in the way
        makes it a passive checkpoint (what can be copied is; the file stays); the next
        idle moment tries again.
        """
        if not self.is_sqlite or self._batch_engine is None:
            return
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        async with self._write_lock:
            await self._writer_thread.run(self._checkpoint_in_thread)

    def _checkpoint_in_thread(self) -> None:
        assert self._batch_engine is not None
        with self._batch_engine.connect() as conn:
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            cursor.execute("PRAGMA busy_timeout=0")  # never wait: the writer needs the thread
            try:
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
                cursor.close()

    async def read(self, work: Callable[[Connection], T]) -> T:
        """Run a read on a connection and return what `work` returns.

        On SQLite in a reader thread, in one hop (see `write_batch`): fifty chats opening
        their memory at once took a third of a second through aiosqlite, a few
        milliseconds this way. On PostgreSQL through the async driver, each statement on
        its own as SQLite's reads are (no `BEGIN` and `ROLLBACK`: two round trips saved).
        """
        if not self.is_sqlite:
            async with self.engine.connect() as conn:
                autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
                return await autocommit.run_sync(work)
        if self._read_engine is None:
            self._read_engine = self._sync_engine()
        return await self._reader_thread.run(lambda: self._read_in_thread(work))

    def _read_in_thread(self, work: Callable[[Connection], T]) -> T:
        assert self._read_engine is not None
        with self._read_engine.connect() as conn:
            return work(conn)

    def _sync_engine(self) -> Engine:
        url = self.engine.url.set(drivername="sqlite")
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine

    async def migrate(self) -> None:
        """Apply Alembic migrations; skip loading Alembic when already at the head."""
        if self.is_sqlite:
            _private_database_files(self.engine.url.database)
        if await self.current_revision() == HEAD_REVISION:
            return
        async with self.engine.begin() as conn:
            if not self.is_sqlite:
                # Two processes starting on a fresh database: one migrates, the other waits
                # here and then finds nothing left to do (Alembic checks again inside).
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})"))
            self.created = await conn.run_sync(_create_or_upgrade)

    async def current_revision(self) -> str | None:
        try:
            async with self.engine.connect() as conn:
                row = (await conn.execute(text("SELECT version_num FROM alembic_version"))).first()
        except (OperationalError, ProgrammingError) as exc:
            if "alembic_version" not in str(exc):
                raise
            return None
        return row[0] if row else None


def _private_database_files(database: str | None) -> None:
    """The database file made 0600 before SQLite opens it: its WAL and shared-memory files
    take its mode. Ones an older version left readable are made private too."""
    if not database or database == ":memory:":
        return
    path = Path(database)
    private_dir(path.parent)
    private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        tighten(path.with_name(path.name + suffix))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Deleted and overwritten content is zeroed, not left in freed space of the file.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT_PAGES}")
    cursor.execute(f"PRAGMA journal_size_limit={SQLITE_JOURNAL_SIZE_LIMIT}")
    cursor.close()


def _create_or_upgrade(connection: Any) -> bool:
    """An empty database gets the newest schema in one step (True); an older one is migrated.

    Creating from the models is what the migrations arrive at (a test compares the two),
    and it spares a first start loading Alembic and replaying every revision.
    """
    if inspect(connection).get_table_names():
        upgrade_to_head(connection)
        return False
    import storage.models  # noqa: F401  (the tables, on the metadata)

    SQLModel.metadata.create_all(connection)
    connection.execute(
        text(
            "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL,"
            " CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
        )
    )
    connection.execute(text("INSERT INTO alembic_version VALUES (:head)"), {"head": HEAD_REVISION})
    return True


def upgrade_to_head(connection: Any) -> None:
    from alembic import command  # heavy: only when the schema is behind

    from storage.migrations import alembic_config

    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def sleep_until_available(db: Database, attempts: int = 30, delay: float = 1.0) -> None:
    """Wait for a database that is briefly down (a PostgreSQL restart)."""
    for _ in range(attempts):
        try:
            async with db.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return
        except (OperationalError, OSError):
            await asyncio.sleep(delay)
    raise DatabaseUnavailable(db.display_url, "still unreachable")
