"""Real `agentdeck` processes: a running bot on the console transport (`started`, `Bot`),
a whole console session from a script (`run_console`), one CLI command (`agentdeck`),
and a console bot killed (`start_then_kill`) or answered (`press_when_shown`) once it
printed a marker.

Each writes nothing outside the test's data directory and is killed if the test ends
first.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

AGENTDECK = [sys.executable, "-m", "bot"]


class Bot:
    """A running `agentdeck run`: type lines, wait for output."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read(), name="read-bot")

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            async with self._changed:
                self.lines.append(raw.decode().rstrip("\n"))
                self._changed.notify_all()

    def say(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((line + "\n").encode())

    async def wait_for(self, pattern: str, *, after: int = 0, timeout: float = 10) -> re.Match[str]:
        """The first line (from line `after` on) that matches `pattern`, once printed."""
        regex = re.compile(pattern)
        async with asyncio.timeout(timeout), self._changed:
            while True:
                for line in self.lines[after:]:
                    if found := regex.search(line):
                        return found
                await self._changed.wait()

    def count(self, needle: str) -> int:
        return sum(needle in line for line in self.lines)

    async def finish(self) -> int:
        """End of input: the bot finishes its work and exits."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        async with asyncio.timeout(20):
            code = await self.process.wait()
            await self._reader
        return code

    async def output_read(self, timeout: float = 5) -> None:
        """Wait until everything the (exited) process printed has been read."""
        async with asyncio.timeout(timeout):
            await self._reader


@asynccontextmanager
async def started(data_dir: Path, *args: str) -> AsyncIterator[Bot]:
    """`agentdeck run` on `data_dir` (its stderr in `data_dir/stderr.txt`)."""
    env = {**os.environ, "AGENTDECK_DATA_DIR": str(data_dir)}
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "stderr.txt").open("wb") as stderr:  # read it when a test fails
        process = await asyncio.create_subprocess_exec(
            *AGENTDECK,
            "run",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env=env,
        )
    bot = Bot(process)
    try:
        yield bot
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        bot._reader.cancel()


async def run_console(
    lines: list[str], data_dir: Path, *args: str, timeout: float = 60
) -> tuple[int, str, str]:
    """`agentdeck run` fed `lines` on stdin to its end: exit code, stdout, stderr."""
    return await agentdeck(
        "run",
        *args,
        data_dir=data_dir,
        stdin="".join(line + "\n" for line in lines),
        timeout=timeout,
    )


async def agentdeck(
    *args: str,
    data_dir: Path | None = None,
    stdin: str = "",
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> tuple[int, str, str]:
    """One `agentdeck ARGS` command to its end: exit code, stdout, stderr."""
    extra = {"AGENTDECK_DATA_DIR": str(data_dir)} if data_dir is not None else {}
    process = await asyncio.create_subprocess_exec(
        *AGENTDECK,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **extra, **(env or {})},
    )
    async with asyncio.timeout(timeout):
        out, err = await process.communicate(stdin.encode())
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def console_bot(data_dir: Path, config: Path) -> asyncio.subprocess.Process:
    """`agentdeck run` on the console transport, stdin and stdout piped."""
    env = {**os.environ, "AGENTDECK_DATA_DIR": str(data_dir)}
    process = await asyncio.create_subprocess_exec(
        *AGENTDECK,
        "run",
        "--config",
        str(config),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    return process


async def start_then_kill(lines: list[str], marker: str, data_dir: Path, config: Path) -> str:
    """Run the bot with stdin held open, wait for `marker` on stdout, then SIGKILL it."""
    process = await console_bot(data_dir, config)
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write("".join(line + "\n" for line in lines).encode())
    await process.stdin.drain()
    seen = ""
    async with asyncio.timeout(30):
        while marker not in seen:
            seen += (await process.stdout.readline()).decode()
    process.send_signal(signal.SIGKILL)
    await process.wait()
    return seen


async def press_when_shown(marker: str, line: str, data_dir: Path, config: Path) -> tuple[int, str]:
    """Run the bot; once `marker` is on stdout, type `line` and end the input."""
    process = await console_bot(data_dir, config)
    assert process.stdin is not None
    assert process.stdout is not None
    seen = ""
    async with asyncio.timeout(60):
        while marker not in seen:
            seen += (await process.stdout.readline()).decode()
        process.stdin.write(f"{line}\n".encode())
        process.stdin.close()
        seen += (await process.stdout.read()).decode()
        await process.wait()
    assert process.returncode is not None
    return process.returncode, seen
