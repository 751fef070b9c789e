"""Jobs end to end: real `agentdeck run` processes, chat through the console's stdin.

The PostgreSQL test runs two processes on one database: exactly one runs the
scheduler, each due run fires once, and killing the leader hands over.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from sqlmodel import col, select

from storage.db import Database
from storage.models import JobFire, Run, SchedulerState
from tests.support.bot_process import started
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow  # real agentdeck processes (started, killed, restarted)


async def test_jobs_from_the_console(data_dir: Path) -> None:
    async with started(data_dir) as bot:
        bot.say("/every 1s host uptime")
        job_id = (await bot.wait_for(r"^`([0-9a-f]{6})` every 1s · host uptime · next"))[1]
        await bot.wait_for(rf"^Job {job_id} · every 1s")
        await bot.wait_for("load average")  # the real uptime, reported by the job
        bot.say(f"/pause {job_id}")
        await bot.wait_for(f"Job {job_id} paused.")
        bot.say('/cron "0 9 * *" host disk')
        await bot.wait_for(r'Example: /cron "0 9 \* \* 1-5" reporter summary')
        bot.say("/at in 2h host uptime")
        later = (await bot.wait_for(r"^`([0-9a-f]{6})` at \S+ \S+ · host uptime"))[1]
        bot.say("/jobs")
        await bot.wait_for(r"Jobs \(2\)")
        bot.say(f"/unschedule {later}")
        await bot.wait_for(f"Job {later} removed.")
        bot.say(f"/jobs {job_id}")
        await bot.wait_for("Recent runs")
        assert await bot.finish() == 0


CONFIG = """
[deck]
database_url = "{url}"
admin_chat = "console:local"
default_agent = "echo"
[scheduler]
takeover_seconds = 0.3
heartbeat_seconds = 0.5
sync_seconds = 0.3
[[agents]]
name = "echo"
kind = "echo"
[[jobs]]
name = "tick"
agent = "echo"
input = "tick"
every = "1s"
report_to = "console:local"
"""


async def test_two_processes_fire_each_run_once_and_hand_over(tmp_path: Path, pg_url: str) -> None:
    config = tmp_path / "deck.toml"
    config.write_text(CONFIG.format(url=pg_url))
    args = ("--config", str(config))
    # One after the other: two processes migrating a new database at once would race
    # (the migrations take no lock of their own).
    async with started(tmp_path / "one", *args) as leader, Database(pg_url) as db:
        leader_pid = await _leader(db, {leader.process.pid})
        async with started(tmp_path / "two", *args) as standby:
            standby_pid = standby.process.pid
            standby.say("/status")
            await standby.wait_for(r"Scheduler: standby; leader \S+:" + str(leader_pid))
            await _fires_by(db, leader_pid, 1)
            await leader.wait_for(r"^Job tick · every 1s")
            assert standby.count("Job tick · every") == 0  # only the leader fires
            # The leader is killed: the standby takes the lead and fires.
            os.kill(leader.process.pid, signal.SIGKILL)
            await leader.process.wait()
            assert await _leader(db, {standby_pid}) == standby_pid
            await _fires_by(db, standby_pid, 1)
            await standby.wait_for(r"^Job tick · every 1s")
            assert await standby.finish() == 0

        async with db.session() as session:
            fires = (await session.exec(select(JobFire).where(JobFire.job_id == "tick"))).all()
            runs = (await session.exec(select(Run).where(Run.job_id == "tick"))).all()
    times = sorted(fire.scheduled_for for fire in fires)
    assert len(times) == len(set(times))  # one claim per due time, across both processes
    run_ids = [run.id for run in runs]
    assert len(run_ids) == len(set(run_ids))
    claimed = {fire.run_id for fire in fires if fire.run_id}
    assert set(run_ids) <= claimed  # every run came from exactly one claim
    holders = {fire.claimed_by.rsplit(":", 1)[1] for fire in fires}
    assert holders == {str(leader_pid), str(standby_pid)}
    printed = leader.count("Job tick · every 1s") + standby.count("Job tick · every 1s")
    assert printed <= len(claimed)


async def _leader(db: Database, candidates: set[int]) -> int:
    """The pid leading the scheduler, once it is one of `candidates`."""

    async def leading() -> int | None:
        async with db.session() as session:
            row = await session.get(SchedulerState, "scheduler")
        pid = int(row.holder.rsplit(":", 1)[1]) if row is not None else None
        return pid if pid in candidates else None

    return await eventually(leading, timeout=15, step=0.1)


async def _fires_by(db: Database, pid: int, count: int) -> None:
    """Wait until `pid` claimed `count` due times."""

    async def claimed() -> bool:
        async with db.session() as session:
            query = select(JobFire).where(col(JobFire.claimed_by).endswith(f":{pid}"))
            return len((await session.exec(query)).all()) >= count

    await eventually(claimed, step=0.1)
