"""Helpers for tests that run several `agentdeck run` processes on one PostgreSQL database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlmodel import select

from storage.db import Database
from storage.models import InboxItem, JobFire
from tests.support.bot_process import Bot, started

STARTUP_SECONDS = 30


def pid_of(owner: str | None) -> int:
    """The pid in a process id (`host:pid:random`, `storage.processes.process_id`)."""
    assert owner is not None
    return int(owner.split(":")[1])


async def listening(port: int) -> None:
    """Wait until something accepts connections on 127.0.0.1:port."""
    async with asyncio.timeout(STARTUP_SECONDS):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            return


@asynccontextmanager
async def two_processes(
    tmp_path: Path, configs: tuple[str, str], ports: tuple[int, int]
) -> AsyncIterator[tuple[Bot, Bot]]:
    """Start a process and wait until it listens on its port, then the other one.

    One after the other: two processes migrating a new database at once would race.
    """
    async with started(tmp_path / "a", "--config", _write(tmp_path, "a", configs[0])) as first:
        await listening(ports[0])
        async with started(tmp_path / "b", "--config", _write(tmp_path, "b", configs[1])) as second:
            await listening(ports[1])
            yield first, second


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return str(path)


async def inbox_owners(db: Database) -> dict[str, int]:
    """Which process (pid) took each stored update, by key."""
    async with db.session() as session:
        rows = (await session.exec(select(InboxItem))).all()
    return {row.key: pid_of(row.owner) for row in rows}


async def fire_holders(db: Database) -> set[int]:
    """The pids of the processes that claimed job runs."""
    async with db.session() as session:
        fires = (await session.exec(select(JobFire))).all()
    return {int(fire.claimed_by.rsplit(":", 1)[1]) for fire in fires}
