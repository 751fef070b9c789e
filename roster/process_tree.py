"""A child's whole process tree: found through /proc, held, and stopped as one.

A signal to a process group misses whatever left the group: Codex starts each sandboxed
command in a session of its own (`codex-linux-sandbox`, then bwrap), Claude Code each
Bash command, and any script may call `setsid`. Such a process is found by its parent
link, and only while its parent lives: once the parent is gone, init adopts it and
nothing tells it from any other process. So what left the group is held (SIGSTOP; read
/proc again until no new one appears: a stopped process starts no other and keeps its
children's link) and killed, never let go again; the group itself is asked to end
(SIGTERM) and, while it ends, whatever it starts outside the group is held too.

A member is known by its pid and start time (field 22 of /proc/<pid>/stat), so a pid
used again by an unrelated process is never signalled. Reading /proc blocks: callers on
the event loop run these functions in a thread. Without /proc (not Linux) only the
group is signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Member:
    """One process of a tree: its pid and when it started (clock ticks after boot)."""

    pid: int
    started: int


@dataclass(frozen=True)
class ProcStat:
    """What /proc/<pid>/stat says of one process that this module uses."""

    parent: int
    group: int
    started: int
    zombie: bool


def stat(pid: int) -> ProcStat | None:
    """/proc/<pid>/stat read; None if there is no such process."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text.rsplit(")", 1)[1].split()  # the name (field 2) may hold spaces and ")"
    return ProcStat(int(fields[1]), int(fields[2]), int(fields[19]), fields[0] == "Z")


def start_ticks(pid: int) -> int | None:
    """When the process started, in clock ticks after boot; None if it is gone."""
    entry = stat(pid)
    return entry.started if entry and not entry.zombie else None


def _table() -> dict[int, ProcStat]:
    table = {}
    for path in PROC.iterdir():
        if path.name.isdigit() and (entry := stat(int(path.name))) is not None:
            table[int(path.name)] = entry
    return table


def _send(pid: int, sig: int, *, group: bool = False) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        (os.killpg if group else os.kill)(pid, sig)


def hold(group: int, known: Iterable[Member] = (), *, with_group: bool = True) -> set[Member]:
    """Stop every living descendant of the group (or of `known`) and, `with_group`, the
    group itself; the members found (the group's own too).

    `known` are members found earlier, whose parent may have ended since (adopted by
    init, they are no longer below the group, but are still this tree's).
    """
    if with_group:
        _send(group, signal.SIGSTOP, group=True)
    if not PROC.is_dir():
        return set()
    members: set[Member] = set()
    while True:
        table = _table()
        pids = {m.pid for m in members} | {pid for pid, e in table.items() if e.group == group}
        pids |= {m.pid for m in known if (e := table.get(m.pid)) and e.started == m.started}
        found = {
            Member(pid, entry.started)
            for pid, entry in table.items()
            if not entry.zombie
            and (pid in pids or entry.parent in pids)
            and Member(pid, entry.started) not in members
        }
        if not found:
            return members
        for member in found:
            if with_group or table[member.pid].group != group:
                _send(member.pid, signal.SIGSTOP)
        members |= found


def terminate(group: int) -> set[Member]:
    """Ask the group to end (SIGTERM) and hold what left it; the members found.

    What left the group is not asked: a stopped process acts on SIGTERM only once let
    go, and let go it could start more out of reach. It is killed with the rest.
    """
    members = hold(group)
    _send(group, signal.SIGTERM, group=True)
    _send(group, signal.SIGCONT, group=True)
    return members


def still_running(group: int, members: set[Member]) -> bool:
    """Whether a process of the group runs; holds (and adds to `members`) what it started
    outside the group meanwhile, before its parent can end and lose the link."""
    members |= hold(group, members, with_group=False)
    return any_alive(group, ())


def kill(group: int, members: Iterable[Member] = ()) -> None:
    """SIGKILL the group, every member still the process it was, and their descendants."""
    every = hold(group, members) | set(members)
    _send(group, signal.SIGKILL, group=True)
    for member in every:
        if start_ticks(member.pid) == member.started:
            _send(member.pid, signal.SIGKILL)


def any_alive(group: int, members: Iterable[Member]) -> bool:
    """Whether a process of the group, or one of `members`, still runs (not a zombie)."""
    if not PROC.is_dir():
        try:
            os.killpg(group, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    if any(start_ticks(m.pid) == m.started for m in members):
        return True
    return any(e.group == group and not e.zombie for e in _table().values())
