"""A deck's data directory seen from a test: secrets stored the way the CLI stores them,
and every byte of the database files (the WAL included) to search for a value."""

from __future__ import annotations

from pathlib import Path

from storage.clock import SystemClock
from storage.db import Database, sqlite_url
from storage.secrets import Vault


async def store_secrets(data_dir: Path, **values: str) -> None:
    """Set secrets in-process in the data directory's database (migrated if new)."""
    async with Database(sqlite_url(data_dir)) as db:
        vault = await Vault(db=db, data_dir=data_dir, clock=SystemClock()).load()
        for name, value in values.items():
            await vault.set(name, value, by="cli:test")


def database_bytes(data_dir: Path) -> bytes:
    """The SQLite database, its WAL and shared memory file, as bytes."""
    files = sorted(data_dir.glob("agentdeck.db*"))
    assert files, f"no database files in {data_dir}"
    return b"".join(path.read_bytes() for path in files)
