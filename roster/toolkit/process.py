"""Run one argv for a tool, with a timeout: no shell, output capped, the group killed."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from roster.children import kill_group, start_child
from roster.errors import CommandNotStarted

MAX_OUTPUT = 16_000


async def run_argv(
    argv: Sequence[str], *, limit: float, env: Mapping[str, str], cwd: str | None = None
) -> str:
    """`exit code N` and the tail of the combined output, or a timeout note.

    On a timeout or a cancel (`/stop`) the whole process group is stopped, so what the
    command started in the background does not live on.
    """
    try:
        process = await start_child(argv, env=env, cwd=cwd)
    except CommandNotStarted as exc:
        return f"cannot start: {exc}"
    except ValueError:  # a NUL byte in an argument
        return "cannot start: an argument holds a NUL character"
    try:
        async with asyncio.timeout(limit):
            out, _ = await process.communicate()
    except (TimeoutError, asyncio.CancelledError) as exc:
        await kill_group(process)
        if isinstance(exc, asyncio.CancelledError):
            raise
        return f"timed out after {limit:g} s"
    text = out.decode(errors="replace")[-MAX_OUTPUT:]
    return f"exit code {process.returncode}\n{text}"
