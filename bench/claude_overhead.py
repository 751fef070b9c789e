"""Claude Code through agentdeck: what a turn costs beyond running the CLI directly.

Per turn: a chat message to a `kind = "claude"` agent until its answer is in the chat,
minus the same turn (one Bash tool use, then an answer) with `claude -p` run directly
against the same fake Anthropic API. Also the progress edits each turn made, and the
bot's RSS with 10 idle sessions (sessions hold no process between turns).

    .venv/bin/python -m bench.claude_overhead [--turns 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.agent_cli_turn import run_quiet
from bot.app import open_deck
from tests.fakes.anthropic_server import FakeAnthropic, Reply, say, use
from tests.fakes.chat import ChatRecorder
from tests.support.agent_clis import FOREIGN_PREFIXES, claude_cli, claude_env
from tests.support.config import make_config

ALLOWED = "Bash(echo:*)"


def script() -> list[Reply]:
    return [use("Bash", command="echo hi"), say("done")]


def config(fake: FakeAnthropic, work: Path, home: Path) -> str:
    return f"""
[deck]
default_agent = "coder"
[[users]]
id = "test:admin"
role = "admin"
[[agents]]
name = "coder"
kind = "claude"
cwd = "{work}"
cli = "{claude_cli()}"
allowed_tools = ["{ALLOWED}"]
env = {{ ANTHROPIC_BASE_URL = "{fake.base_url}", ANTHROPIC_API_KEY = "sk-dummy", HOME = "{home}" }}
"""


async def direct_turn(fake: FakeAnthropic, work: Path, home: Path) -> float:
    env = claude_env(fake.base_url, home)
    argv = [str(claude_cli()), "-p", "hi", "--output-format", "json", "--allowedTools", ALLOWED]
    fake.script += script()
    started = time.perf_counter()
    await run_quiet(argv, work, env)
    return time.perf_counter() - started


async def measure(turns: int, fake: FakeAnthropic, work: Path, home: Path) -> dict[str, Any]:
    """Direct and through-the-deck turns alternate, so a change of load hits both alike."""
    chat = ChatRecorder()
    plain: list[float] = []
    ours: list[float] = []
    edits: list[int] = []
    async with open_deck(make_config(config(fake, work, home)), transports=[chat]):
        for turn in range(turns + 1):
            plain.append(await direct_turn(fake, work, home))
            fake.script += script()
            before = len(chat.posted)
            started = time.perf_counter()
            await chat.say(f"turn {turn}")
            while sum("coder: done" in p.text for p in chat.posted) < turn + 1:
                await asyncio.sleep(0.005)
            ours.append(time.perf_counter() - started)
            edits.append(sum(p.edits for p in chat.posted[before:]))
        for idle in range(10):  # ten chats, ten sessions, all idle afterwards
            fake.script.append(say("done"))
            await chat.say("hello", chat=f"test:idle{idle}")
            await chat.wait_for("coder: done", chat=f"test:idle{idle}")
        rss = _rss_mb()
    # The first of each warms the page cache (the binary is hundreds of MB).
    return {"plain": plain[1:], "ours": ours[1:], "edits": edits[1:], "rss_mb": rss}


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def p50(values: list[float]) -> float:
    return statistics.median(values) * 1000


async def main(turns: int) -> None:
    for name in list(os.environ):
        if name.startswith(FOREIGN_PREFIXES):
            del os.environ[name]
    root = Path(tempfile.mkdtemp(prefix="claude-overhead-"))
    os.environ["AGENTDECK_DATA_DIR"] = str(root / "data")
    work, home = root / "work", root / "home"
    work.mkdir()
    home.mkdir()
    fake = await FakeAnthropic().start()
    try:
        deck = await measure(turns, fake, work, home)
    finally:
        await fake.stop()
    plain, ours = deck["plain"], deck["ours"]
    overheads = [o - p for o, p in zip(ours, plain, strict=True)]
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {turns} turns each")
    print(f"claude -p direct      p50 {p50(plain):6.0f} ms  max {max(plain) * 1000:6.0f} ms")
    print(f"through agentdeck     p50 {p50(ours):6.0f} ms  max {max(ours) * 1000:6.0f} ms")
    print(f"overhead, pairwise    p50 {p50(overheads):6.0f} ms")
    print(f"progress edits/turn   {statistics.mean(deck['edits']):.1f}")
    print(f"bot RSS, 10 idle sessions: {deck['rss_mb']:.0f} MB (no CLI process kept)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=10)
    asyncio.run(main(parser.parse_args().turns))
