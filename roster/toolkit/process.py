"""Run one argv for a tool, with a timeout: no shell, output capped, the group killed.

The group is reported as soon as it exists (`on_started`): the run's row names it, so
a start after a kill -9 of the bot stops what the tool left running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence

from roster.children import kill_group, start_child
from roster.errors import CommandNotStarted
from roster.tail import Redact, scrubbed_tail

MAX_OUTPUT = 16_000


async def run_argv(
    argv: Sequence[str],
    *,
    limit: float,
    env: Mapping[str, str],
    cwd: str | None = None,
    redact: Redact = str,
    on_started: Callable[[int], None] = lambda pid: None,
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
    on_started(process.pid)
    try:
        async with asyncio.timeout(limit):
            out, _ = await process.communicate()
    except (TimeoutError, asyncio.CancelledError) as exc:
        await kill_group(process)
        if isinstance(exc, asyncio.CancelledError):
            raise
        return f"timed out after {limit:g} s"
    # Scrubbed before it is cut: a secret's value cut in two would leak its other half.
    text = scrubbed_tail(out.decode(errors="replace"), MAX_OUTPUT, redact)
    return f"exit code {process.returncode}\n{text}"
