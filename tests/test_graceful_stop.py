"""SIGTERM while work runs: short work finishes, long work is stopped within the grace
(and says the bot is shutting down), a second SIGTERM cuts the grace short, work waiting
for an approval is parked; a restart on the same data loses nothing.

Real `agentdeck run` processes on the console transport and a real SQLite file.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from sqlmodel import select

from bot.errors import ConfigError
from bot.logs import LOG_FILE
from storage.db import Database, sqlite_url
from storage.models import Run, RunState
from tests.support.bot_process import Bot, run_console, started
from tests.support.config import make_config
from tests.support.process_groups import group_alive, read_pid
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow  # real agentdeck processes (started, killed, restarted)

# The exit may take the grace, then the command's own kill grace (`roster.command`:
# SIGTERM, SIGKILL 2 s later for a group that ignores it), then the last writes.
MARGIN_SECONDS = 5.0

CONFIG = """
[deck]
admin_chat = "console:local"
stop_grace_seconds = GRACE
[[agents]]
name = "careful"
kind = "command"
command = ["echo", "{input}"]
approval = "always"
[[agents]]
name = "worker"
kind = "command"
[agents.actions]
quick = ["/bin/sh", "-c", "sleep 1; echo quick-answer"]
# A shell and its child that both ignore SIGTERM: the whole group must still go.
hang = ["/bin/sh", "-c", "trap '' TERM; echo $$ > PIDFILE; sleep 60; echo never"]
"""


def write_config(tmp_path: Path, *, grace: float) -> Path:
    config = tmp_path / "deck.toml"
    text = CONFIG.replace("GRACE", str(grace))
    config.write_text(text.replace("PIDFILE", str(tmp_path / "hang.pid")))
    return config


async def terminate(bot: Bot, *, within: float) -> int:
    """SIGTERM with stdin still open (the console is not what ends it); the exit code."""
    bot.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(within):
        code = await bot.process.wait()
    await bot.output_read()  # everything it printed before exiting
    return code


async def logged(data_dir: Path, text: str) -> None:
    """Wait until the bot's log file has `text` (what it does, before a test acts on it)."""
    log = data_dir / LOG_FILE
    await eventually(lambda: log.exists() and text in log.read_text())


async def runs_of(data_dir: Path) -> list[Run]:
    async with Database(sqlite_url(data_dir)) as db, db.session() as session:
        return list((await session.exec(select(Run))).all())


async def test_a_short_run_in_flight_finishes(data_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, grace=10)
    async with started(data_dir, "--config", str(config)) as bot:
        bot.say("/ask worker quick")
        await bot.wait_for("worker working")
        code = await terminate(bot, within=10 + MARGIN_SECONDS)
    assert code == 0
    assert "quick-answer" in [line.strip() for line in bot.lines]
    [run] = await runs_of(data_dir)
    assert run.status == RunState.DONE


async def test_a_long_run_is_stopped_within_the_grace(data_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, grace=1)
    async with started(data_dir, "--config", str(config)) as bot:
        bot.say("/at in 2h worker quick")
        job_id = (await bot.wait_for(r"^`([0-9a-f]{6})` at \S+ \S+ · worker quick"))[1]
        bot.say("/ask worker hang")
        pgid = await read_pid(tmp_path / "hang.pid")
        assert group_alive(pgid)
        code = await terminate(bot, within=1 + MARGIN_SECONDS)
    assert code == 0
    assert not group_alive(pgid)
    assert "worker: stopped: agentdeck is shutting down." in bot.lines  # not a user's /stop
    assert not any("never" in line for line in bot.lines)
    [run] = await runs_of(data_dir)
    assert run.status == RunState.CANCELLED

    code, out, err = await run_console(["/runs", "/jobs"], data_dir, "--config", str(config))
    assert code == 0, err
    assert "agentdeck is back. Interrupted runs: 0;" in out
    assert " worker cancelled " in out
    assert f"`{job_id}` at " in out  # the scheduled job is still there
    [run] = await runs_of(data_dir)
    assert run.status == RunState.CANCELLED  # not taken for interrupted by the restart


async def test_a_second_sigterm_cuts_the_grace_short(data_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, grace=30)
    async with started(data_dir, "--config", str(config)) as bot:
        bot.say("/ask worker hang")
        pgid = await read_pid(tmp_path / "hang.pid")
        bot.process.send_signal(signal.SIGTERM)
        await logged(data_dir, "waiting up to 30")  # the grace began
        code = await terminate(bot, within=MARGIN_SECONDS)  # not the 30 s grace
    assert code == 0
    assert not group_alive(pgid)
    assert "asked again to stop; cancelling running work now" in (data_dir / LOG_FILE).read_text()
    assert "worker: stopped: agentdeck is shutting down." in bot.lines
    [run] = await runs_of(data_dir)
    assert run.status == RunState.CANCELLED


async def test_a_run_waiting_for_approval_is_parked(data_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, grace=10)
    async with started(data_dir, "--config", str(config)) as bot:
        bot.say("/ask careful parked")
        await bot.wait_for(r"\[1\] Approve")
        code = await terminate(bot, within=MARGIN_SECONDS)  # nothing runs: no grace needed
    assert code == 0
    [run] = await runs_of(data_dir)
    assert run.status == RunState.WAITING

    code, out, err = await run_console(["1"], data_dir, "--config", str(config))
    assert code == 0, err
    assert "approvals waiting: 1 (1 card(s) posted again)" in out
    assert out.rstrip().splitlines()[-2].strip() == "parked"
    [run] = await runs_of(data_dir)
    assert run.status == RunState.DONE


def test_the_grace_is_a_positive_number_of_seconds() -> None:
    assert make_config("").deck.stop_grace_seconds == 10
    with pytest.raises(ConfigError, match=r"deck\.stop_grace_seconds: Input should be greater"):
        make_config("[deck]\nstop_grace_seconds = 0\n")
