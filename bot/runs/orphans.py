"""Process groups a crash left running: how one is known again after a restart, and stopped.

A command runs in a session of its own (`roster.command`), so its process group's id is
its pid, and after a kill -9 of the bot the group goes on with init as its parent. The
run's row records the group, the leader's start time (clock ticks after boot, field 22
of /proc/<pid>/stat) and this host (its name and boot id). A later start on the same
host stops the group only while its leader is still the process recorded: a pid used
again belongs to a process with another start time, and is left alone. A group whose
leader has ended is not touched either (its number can no longer be told from another
group's). What the group started in sessions of its own (Codex's sandboxed commands) is
stopped with it while its parent links hold (`roster.process_tree`). Without /proc (not
Linux) nothing is recorded and nothing is stopped.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from enum import StrEnum
from pathlib import Path

from roster.children import stop_tree
from roster.process_tree import any_alive, start_ticks

PROC = Path("/proc")


class Left(StrEnum):
    """What became of a cut run's processes."""

    STOPPED = "stopped"  # still running at the start: terminated (killed after the grace)
    ENDED = "ended"  # its command had ended (or its leader had, or its pid was used again)
    ELSEWHERE = "elsewhere"  # it ran on another host: this one cannot reach it
    UNKNOWN = "unknown"  # none was recorded: not started, or cut before its row was written


@functools.cache
def host() -> str:
    """This host: its name and boot id (a pid means something only where it was given)."""
    try:
        boot = (PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    return f"{socket.gethostname()}/{boot}"[:200]


def group_running(group: int) -> bool:
    """Whether a process of the group still runs (a zombie waiting for init does not)."""
    return any_alive(group, ())


async def stop_left(
    group: int | None, started: int | None, on_host: str | None, grace: float
) -> Left:
    """Stop a group a dead process left: SIGTERM, then SIGKILL after `grace` seconds."""
    if group is None:
        return Left.UNKNOWN
    if on_host != host():
        return Left.ELSEWHERE
    if started is None or await asyncio.to_thread(start_ticks, group) != started:
        return Left.ENDED
    await stop_tree(group, grace=grace)
    return Left.STOPPED
