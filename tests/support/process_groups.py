"""Process groups from /proc: whether one still has live members, and the pid a child
shell wrote to a file (the group it leads)."""

from __future__ import annotations

from pathlib import Path

from tests.support.waiting import eventually


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it went while we looked
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members


def group_alive(pgid: int) -> bool:
    """Whether a live process is in the group (a zombie waiting for its reaper is not)."""
    return bool(group_members(pgid))


async def read_pid(path: Path, timeout: float = 10) -> int:
    """The pid written to `path`, once it is there."""

    def written() -> str:
        return path.read_text().strip() if path.exists() else ""

    return int(await eventually(written, timeout))
