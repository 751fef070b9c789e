"""SIGTERM while work runs: short work finishes, long work is stopped within the grace
(and says the bot is shutting down), a second SIGTERM cuts the grace short, work waiting
for an approval is parked; a restart on the same data loses nothing.

Real `agentdeck run` processes on the console transport and a real SQLite file.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from sqlmodel import select

from bot.logs import LOG_FILE
from storage.db import Database, sqlite_url
from storage.models import Run
from tests.support.bot_process import Bot

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
    async with asyncio.timeout(10):
        while not log.exists() or text not in log.read_text():
            await asyncio.sleep(0.05)


async def runs_of(data_dir: Path) -> list[Run]:
    async with Database(sqlite_url(data_dir)) as db, db.session() as session:
        return list((await session.exec(select(Run))).all())
