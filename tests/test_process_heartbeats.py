"""Runs belong to the process that runs them: another process on the same PostgreSQL
database leaves them alone while that process beats, and reports them interrupted once
its heartbeat has gone stale (here, a kill -9)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import pytest
from sqlmodel import select

from roster.children import KILL_GRACE_SECONDS
from storage.db import Database
from storage.models import ProcessBeat, Run, RunState
from tests.support.bot_process import started
from tests.support.cluster import pid_of
from tests.support.process_groups import group_alive
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow  # real agentdeck processes (killed, and one restarted)

STALE_SECONDS = 2.0
CONFIG = f"""
[deck]
database_url = "{{url}}"
admin_chat = "console:local"
process_heartbeat_seconds = 0.3
process_stale_seconds = {STALE_SECONDS}
[scheduler]
enabled = false
[[agents]]
name = "sleeper"
kind = "command"
command = ["sleep", "{{{{input}}}}"]
timeout = 60
"""


async def _runs(db: Database) -> list[Run]:
    async with db.session() as session:
        return list((await session.exec(select(Run))).all())


async def _running_run(db: Database) -> Run:
    (run,) = await eventually(lambda: _runs(db), step=0.1)
    return run


async def test_a_live_process_keeps_its_runs_a_dead_ones_are_reported(
    tmp_path: Path, pg_url: str
) -> None:
    config = tmp_path / "deck.toml"
    config.write_text(CONFIG.format(url=pg_url))
    args = ("--config", str(config))
    async with (
        asyncio.timeout(60),
        started(tmp_path / "a", *args) as first,
        Database(pg_url) as db,
    ):
        first.say("/ask sleeper 30")
        await first.wait_for("sleeper working")
        run = await _running_run(db)
        assert pid_of(run.owner) == first.process.pid

        async with started(tmp_path / "b", *args) as second:
            await second.wait_for("agentdeck is back. Interrupted runs: 0;")
            await asyncio.sleep(STALE_SECONDS * 1.5)  # longer than a stale heartbeat
            (run,) = await _runs(db)
            assert run.status == RunState.RUNNING  # first still beats: its run is its own
            assert second.count("interrupted") == 0

            os.kill(first.process.pid, signal.SIGKILL)
            await first.process.wait()
            killed_at = asyncio.get_running_loop().time()
            said = "sleeper: this run was interrupted by a restart and did not finish (30);"
            await second.wait_for(
                re.escape(f"{said} its processes were stopped."),  # on this host: it can
                timeout=STALE_SECONDS * 4 + KILL_GRACE_SECONDS,
            )
            assert run.process_group is not None
            assert not group_alive(run.process_group)
            waited = asyncio.get_running_loop().time() - killed_at
            assert waited >= STALE_SECONDS * 0.5  # not before its heartbeat went stale
            await second.wait_for(rf"Interrupted runs: 1 \(sleeper {run.id[:8]}")
            (cut,) = [row for row in await _runs(db) if row.id == run.id]
            assert cut.status == RunState.INTERRUPTED
            async with db.session() as session:
                beats = (await session.exec(select(ProcessBeat))).all()
            assert [pid_of(beat.id) for beat in beats] == [second.process.pid]  # dead one gone
            assert await second.finish() == 0
        assert second.count("this run was interrupted") == 1  # reported by one process, once
