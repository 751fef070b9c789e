"""Chaos for the scheduler: SIGTERM during a job's run, again and again; then count.

A real `agentdeck run` on SQLite and the console runs a job due every second whose run
takes a second (its command appends its pid to a file: executions are counted). At each
cycle SIGTERM comes while a run goes, and the process is started again on the same data.
Must hold at every stop: the stopping process never takes the lead again and skips
nothing as busy while it drains (`tests/test_scheduler_stop.py`, once); the runs due
during the drain and the downtime are the next leader's catch-up, one coalesced run; no
due time fires twice and no run executes twice.

Counted into a `Row` of `tests.support.chaos`: "messages" are job runs, "faults" SIGTERMs,
"lost" stops after which no catch-up came, "recovery" SIGTERM to the catch-up's report.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from sqlmodel import select

from bot.logs import LOG_FILE
from storage.db import Database, sqlite_url
from storage.models import JobFire, Run, RunState
from tests.support.bot_process import Bot, started
from tests.support.chaos import Row
from tests.support.log_lines import BUSY, CAUGHT_UP, DRAINING, LEADING

GRACE_SECONDS = 60
START_SECONDS = 60.0
CONFIG = """
[deck]
admin_chat = "console:local"
stop_grace_seconds = {grace}
[scheduler]
takeover_seconds = 0.3
heartbeat_seconds = 0.5
sync_seconds = 0.3
[[agents]]
name = "worker"
kind = "command"
[agents.actions]
tick = ["/bin/sh", "-c", "echo $$ >> {count}; sleep {work}; echo tick-done"]
[[jobs]]
name = "tick"
agent = "worker"
input = "tick"
every = "1s"
report_to = "console:local"
"""
CATCH_UP = f"^Job tick · every 1s · .*{CAUGHT_UP}"


class Cycles:
    """The stops so far, and what each drain and restart showed."""

    def __init__(self, tmp: Path) -> None:
        self.data = tmp / "data"
        self.count = tmp / "executions.txt"
        self.config = tmp / "deck.toml"
        self.stops = 0
        self.caught_up = 0
        self.recovery: list[float] = []
        self.problems: list[str] = []
        self._stopped_at: float | None = None

    def executions(self) -> int:
        return len(self.count.read_text().split()) if self.count.exists() else 0

    async def one(self, *, stop: bool) -> None:
        """Start; after a stop, wait for the catch-up; with `stop`, SIGTERM during a run."""
        loop = asyncio.get_running_loop()
        async with started(self.data, "--config", str(self.config)) as bot:
            if self._stopped_at is not None:
                try:
                    await bot.wait_for(CATCH_UP, timeout=START_SECONDS)
                except TimeoutError:
                    self.problems.append(f"no catch-up after stop {self.stops}")
                else:
                    self.caught_up += 1
                    self.recovery.append(loop.time() - self._stopped_at)
            if stop:
                await self._stop_during_a_run(bot)
            else:
                bot.process.send_signal(signal.SIGTERM)
                await self._exited(bot)

    async def _stop_during_a_run(self, bot: Bot) -> None:
        before = self.executions()
        async with asyncio.timeout(START_SECONDS):
            while self.executions() <= before:
                await asyncio.sleep(0.02)
        log = self.data / LOG_FILE
        offset = log.stat().st_size if log.exists() else 0
        self._stopped_at = asyncio.get_running_loop().time()
        bot.process.send_signal(signal.SIGTERM)
        self.stops += 1
        await self._exited(bot)
        told = log.read_text(errors="replace")[offset:]
        if DRAINING not in told:  # the run ended before the stop: nothing was tested
            self.problems.append(f"stop {self.stops}: came after the run, not during it")
        drain = told[told.index(DRAINING) :] if DRAINING in told else ""
        if LEADING in drain:
            self.problems.append(f"stop {self.stops}: took the lead again while stopping")
        if BUSY in drain:
            self.problems.append(f"stop {self.stops}: skipped a run as busy while stopping")

    async def _exited(self, bot: Bot) -> None:
        async with asyncio.timeout(GRACE_SECONDS + 15):
            code = await bot.process.wait()
        if code != 0:
            self.problems.append(f"stop {self.stops}: exit code {code}")


async def job_sigterm(tmp: Path, *, stops: int, work: float = 1.0) -> Row:
    """`stops` SIGTERMs, each during a run, each followed by a start; then counted."""
    cycles = Cycles(tmp)
    cycles.config.write_text(CONFIG.format(grace=GRACE_SECONDS, count=cycles.count, work=work))
    for _ in range(stops):
        await cycles.one(stop=True)
    await cycles.one(stop=False)  # the last catch-up, then a plain stop
    async with Database(sqlite_url(cycles.data)) as db, db.session() as session:
        fires = list((await session.exec(select(JobFire))).all())
        runs = list((await session.exec(select(Run))).all())
    claimed = {fire.run_id for fire in fires if fire.run_id}
    executions = cycles.executions()
    unclaimed = [run.id for run in runs if run.id not in claimed]
    duplicates = max(0, executions - len(runs)) + len(unclaimed)
    running = [run.id for run in runs if run.status == RunState.RUNNING]
    problems = list(cycles.problems)
    if duplicates:
        problems.append(f"{executions} executions of {len(runs)} runs; unclaimed: {unclaimed}")
    if running:
        problems.append(f"runs left running: {running}")
    return Row(
        setup="job-sigterm: SQLite, a job every 1 s running 1 s, SIGTERM during a run",
        messages=len(runs),
        faults=cycles.stops,
        executions=executions,
        duplicates=duplicates,
        lost=cycles.stops - cycles.caught_up,
        reported=sum(run.status == RunState.INTERRUPTED for run in runs),
        also_answered=0,
        recovery=tuple(cycles.recovery),
        problems=tuple(problems),
    )
