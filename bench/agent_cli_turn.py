"""Coding-agent CLIs: the time of one turn run directly against the local fake APIs.

The baseline for issue 17's `bench/claude_overhead.py` (agentdeck's overhead is its turn
time minus this): `claude -p` (a fresh process per turn, as a command agent would run it),
a turn through claude-agent-sdk (a new client per turn: connect, query, result; and a
further turn on an open client), and `codex exec --json`. Each answers one scripted line.

    .venv/bin/python -m bench.agent_cli_turn [--turns 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.fakes.anthropic_server import FakeAnthropic, say
from tests.fakes.responses_server import FakeResponses
from tests.fakes.responses_server import say as codex_say
from tests.support.agent_clis import claude_cli, claude_env, codex_cli, codex_env


async def timed(turns: int, one: Callable[[], Awaitable[None]]) -> list[float]:
    await one()  # warm the page cache: the binaries are hundreds of MB
    seconds = []
    for _ in range(turns):
        started = time.perf_counter()
        await one()
        seconds.append(time.perf_counter() - started)
    return seconds


async def run_quiet(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert await process.wait() == 0, argv


async def claude_print(turns: int, root: Path) -> list[float]:
    fake = await FakeAnthropic().start()
    env = claude_env(fake.base_url, root / "claude-home")
    argv = [str(claude_cli()), "-p", "hi", "--output-format", "json"]

    async def one() -> None:
        fake.script.append(say("hello"))
        await run_quiet(argv, root, env)

    try:
        return await timed(turns, one)
    finally:
        await fake.stop()


async def claude_sdk(turns: int, root: Path) -> tuple[list[float], list[float]]:
    from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient

    fake = await FakeAnthropic().start()
    env = claude_env(fake.base_url, root / "sdk-home")
    options = ClaudeAgentOptions(cli_path=claude_cli(), cwd=root, env=env, setting_sources=[])

    async def turn(client: ClaudeSDKClient) -> None:
        fake.script.append(say("hello"))
        await client.query("hi")
        async for _ in client.receive_response():
            pass

    async def fresh() -> None:
        async with ClaudeSDKClient(options) as client:
            await turn(client)

    try:
        cold = await timed(turns, fresh)
        async with ClaudeSDKClient(options) as client:
            warm = await timed(turns, lambda: turn(client))
        return cold, warm
    finally:
        await fake.stop()


async def codex_exec(turns: int, root: Path) -> list[float]:
    fake = await FakeResponses().start()
    env = codex_env(fake.base_url, root / "codex-home")
    argv = [str(codex_cli()), "exec", "--json", "--skip-git-repo-check", "hi"]

    async def one() -> None:
        fake.script.append(codex_say("hello"))
        await run_quiet(argv, root, env)

    try:
        return await timed(turns, one)
    finally:
        await fake.stop()


def row(name: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    p50 = statistics.median(ordered)
    return f"| {name} | {p50 * 1000:.0f} | {p95 * 1000:.0f} | {ordered[-1] * 1000:.0f} |"


async def main(turns: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        direct = await claude_print(turns, root)
        cold, warm = await claude_sdk(turns, root)
        codex = await codex_exec(turns, root)
    print(f"{turns} turns each, one scripted answer, ms\n")
    print("| turn | p50 | p95 | max |\n|---|---|---|---|")
    print(row("`claude -p` (new process)", direct))
    print(row("SDK: new client, one turn", cold))
    print(row("SDK: next turn, open client", warm))
    print(row("`codex exec --json` (new process)", codex))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=10)
    options = parser.parse_args()
    asyncio.run(main(options.turns))
