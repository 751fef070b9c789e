"""Stopping a child stops all it started, also what left its process group.

The attack: a command (or a coding agent's sandbox, as Codex's does) starts a child in a
session of its own, which a signal to the group misses; or keeps starting new ones while
it is being stopped. After `kill_group` (a timeout, `/stop`) and after a restart's
`stop_left` (what a dead bot left), nothing of the tree may still run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from bot.runs.orphans import Left, host, stop_left
from roster.children import kill_group, start_child
from roster.process_tree import start_ticks
from tests.support.waiting import eventually

PYTHON = sys.executable

# Writes its pid to the file, then, in a new session, sleeps (ignoring SIGTERM).
DETACHED = (
    "import os, signal, sys, time\n"
    "os.setsid()\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "with open(sys.argv[1], 'a') as f: f.write(f'{os.getpid()}\\n')\n"
    "time.sleep(60)\n"
)

# Starts detached sleepers, one every 10 ms, each in a session of its own, until stopped.
SPAWNER = (
    "import subprocess, sys, time\n"
    "while True:\n"
    "    subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2]])\n"
    "    time.sleep(0.01)\n"
)


def pids_in(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def running(pids: list[int]) -> list[int]:
    return [pid for pid in pids if start_ticks(pid) is not None]


def kill_all(pids: list[int]) -> None:
    for pid in running(pids):
        os.kill(pid, signal.SIGKILL)


async def test_kill_group_stops_a_grandchild_that_left_the_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    shell = f'{PYTHON} -c "$0" {pidfile} & wait'
    process = await start_child(["/bin/sh", "-c", shell, DETACHED], env={"PATH": "/usr/bin:/bin"})
    try:
        (grandchild,) = await eventually(lambda: pids_in(pidfile))
        assert os.getpgid(grandchild) != process.pid  # out of the group: killpg misses it
        await kill_group(process)
        assert running([grandchild]) == []
    finally:
        kill_all(pids_in(pidfile))


async def test_kill_group_stops_a_tree_that_keeps_starting_detached_children(
    tmp_path: Path,
) -> None:
    pidfile = tmp_path / "pids"
    argv = [PYTHON, "-c", SPAWNER, DETACHED, str(pidfile)]
    process = await start_child(argv, env={"PATH": "/usr/bin:/bin"})
    try:
        await eventually(lambda: len(pids_in(pidfile)) >= 5)
        await kill_group(process)
        await asyncio.sleep(0.3)  # a child started while it was stopped would write now
        started = pids_in(pidfile)
        assert len(started) >= 5
        assert running(started) == []
    finally:
        kill_all(pids_in(pidfile))


async def test_a_dead_bots_group_is_stopped_with_what_left_it(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    process = await asyncio.create_subprocess_exec(
        PYTHON, "-c", SPAWNER, DETACHED, str(pidfile), start_new_session=True
    )
    try:
        await eventually(lambda: len(pids_in(pidfile)) >= 3)
        started = start_ticks(process.pid)
        assert await stop_left(process.pid, started, host(), 0.5) is Left.STOPPED
        await process.wait()
        await asyncio.sleep(0.3)
        assert running(pids_in(pidfile)) == []
    finally:
        kill_all(pids_in(pidfile))
        if process.returncode is None:
            process.kill()
            await process.wait()
