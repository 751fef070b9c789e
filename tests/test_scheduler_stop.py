"""SIGTERM while a scheduled job runs: the stopping process never leads again.

Real `agentdeck run` processes on the console transport. A job is due every second and
its run takes three; SIGTERM comes while the first run goes. The process steps down,
fires nothing more (no second "runs the scheduler", no run skipped as busy), exits as
soon as that run is done (not after the grace), and the runs due meanwhile are the next
leader's catch-up: after a restart on SQLite, or the other process on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import pytest
from sqlmodel import select

from bot.logs import LOG_FILE
from storage.db import Database, sqlite_url
from storage.models import JobFire, Run, RunState
from tests.support.bot_process import Bot, started
from tests.support.log_lines import BUSY, CAUGHT_UP, DRAINING, GRACE_RAN_OUT, LEADING
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow  # real agentdeck processes (started, killed, restarted)

GRACE_SECONDS = 60  # far longer than the run: a stop that takes it has waited for nothing
RUN_SECONDS = 3

CONFIG = """
[deck]
DATABASE
admin_chat = "console:local"
stop_grace_seconds = GRACE
[scheduler]
takeover_seconds = 0.3
heartbeat_seconds = 0.5
sync_seconds = 0.3
[[agents]]
name = "worker"
kind = "command"
[agents.actions]
tick = ["/bin/sh", "-c", "echo $$ >> STARTED; sleep SECONDS; echo tick-done"]
[[jobs]]
name = "tick"
agent = "worker"
input = "tick"
every = "1s"
report_to = "console:local"
"""


def write_config(tmp_path: Path, database: str = "") -> Path:
    config = tmp_path / "deck.toml"
    text = CONFIG.replace("DATABASE", database).replace("GRACE", str(GRACE_SECONDS))
    text = text.replace("SECONDS", str(RUN_SECONDS)).replace("STARTED", str(tmp_path / "started"))
    config.write_text(text)
    return config


async def first_run_started(tmp_path: Path) -> None:
    started_file = tmp_path / "started"
    await eventually(lambda: started_file.exists() and started_file.read_text().strip(), 20)


async def stop_during_the_run(bot: Bot, tmp_path: Path) -> int:
    """SIGTERM while the job's first run goes; the exit code."""
    await first_run_started(tmp_path)
    bot.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(GRACE_SECONDS + 15):
        code = await bot.process.wait()
    await bot.output_read()
    return code


def after_the_drain_began(data_dir: Path) -> str:
    """The stopping process's log from the moment it began to wait for running work."""
    log = (data_dir / LOG_FILE).read_text()
    assert DRAINING in log, log[-3000:]
    return log[log.index(DRAINING) :]


async def rows(url: str) -> tuple[list[JobFire], list[Run]]:
    async with Database(url) as db, db.session() as session:
        fires = list((await session.exec(select(JobFire))).all())
        runs = list((await session.exec(select(Run))).all())
    return fires, runs


def not_once(fires: list[JobFire], runs: list[Run]) -> dict[str, list[str]]:
    """What breaks "each due time once": due times fired twice, runs no fire claimed,
    runs left running."""
    times = Counter(fire.scheduled_for for fire in fires)
    claimed = {fire.run_id for fire in fires if fire.run_id}
    return {
        "fired twice": [str(due) for due, count in times.items() if count > 1],
        "unclaimed runs": [run.id for run in runs if run.id not in claimed],
        "still running": [run.id for run in runs if run.status == RunState.RUNNING],
    }


async def test_a_stopping_process_never_leads_again_on_sqlite(
    data_dir: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    async with started(data_dir, "--config", str(config)) as bot:
        code = await stop_during_the_run(bot, tmp_path)
    assert code == 0
    drain = after_the_drain_began(data_dir)
    assert GRACE_RAN_OUT not in drain, drain  # the run ended; the 60 s grace did not
    assert LEADING not in drain, drain
    assert BUSY not in drain, drain
    assert bot.count("tick-done") == 1  # the run in flight finished and was reported

    async with started(data_dir, "--config", str(config)) as again:
        # The runs due while the first process drained and was gone: one catch-up run.
        await again.wait_for(f"^Job tick · every 1s · .*{CAUGHT_UP}", timeout=20)
        again.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(GRACE_SECONDS + 15):
            assert await again.process.wait() == 0
    fires, runs = await rows(sqlite_url(data_dir))
    assert not_once(fires, runs) == {"fired twice": [], "unclaimed runs": [], "still running": []}


async def test_a_stopping_leader_hands_over_to_the_other_process_on_postgres(
    tmp_path: Path, pg_url: str
) -> None:
    config = write_config(tmp_path, f'database_url = "{pg_url}"')
    args = ("--config", str(config))
    one, two = tmp_path / "one", tmp_path / "two"
    async with started(one, *args) as leader:
        await first_run_started(tmp_path)  # the first process leads (the other is not up)
        async with started(two, *args) as standby:
            await standby.wait_for(r"^agentdeck is back", timeout=30)
            (tmp_path / "started").write_text("")  # wait below for the leader's next run
            assert await stop_during_the_run(leader, tmp_path) == 0
            drain = after_the_drain_began(one)
            assert LEADING not in drain, drain
            assert BUSY not in drain, drain
            assert GRACE_RAN_OUT not in drain, drain  # the run ended; the grace did not
            # The other process leads now, and makes up for the runs due in the drain.
            await standby.wait_for(f"^Job tick · every 1s · .*{CAUGHT_UP}", timeout=20)
            assert LEADING in (two / LOG_FILE).read_text()
            standby.process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(GRACE_SECONDS + 15):
                assert await standby.process.wait() == 0
    fires, runs = await rows(pg_url)
    assert not_once(fires, runs) == {"fired twice": [], "unclaimed runs": [], "still running": []}
