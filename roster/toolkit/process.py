"""Run one argv as a subprocess with a timeout: no shell, output capped."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

MAX_OUTPUT = 16_000


async def run_argv(argv: Sequence[str], *, limit: float, cwd: str | None = None) -> str:
    """`exit code N` and the tail of the combined output, or a timeout note."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return f"cannot start {argv[0]!r}: {exc.strerror or exc}"
    except ValueError:  # a NUL byte in an argument
        return "cannot start: an argument holds a NUL character"
    try:
        async with asyncio.timeout(limit):
            out, _ = await process.communicate()
    except (TimeoutError, asyncio.CancelledError) as exc:
        process.kill()
        await process.wait()
        if isinstance(exc, asyncio.CancelledError):
            raise
        return f"timed out after {limit:g} s"
    text = out.decode(errors="replace")[-MAX_OUTPUT:]
    return f"exit code {process.returncode}\n{text}"
