"""MCP: what a tool call through agentdeck costs over the same call made directly.

Both sides call `get_current_time` of the reference `mcp-server-time` (PyPI, stdio),
each on a server process of its own:

- direct: the `mcp` SDK's `ClientSession` over `stdio_client`, `call_tool`;
- agentdeck: an llm agent's tool-call path (`LLMAgent._call_tool`: the model's JSON
  arguments parsed and checked against the schema, the policy and egress rulings,
  `secret:` references resolved, the shared connection, the result turned into text
  and scrubbed of a vault's secrets).

Rounds alternate between the two so that load on the machine hits both alike; the
overhead is the difference of the medians. Start time: from the first use of a
server to its tools listed (process start, MCP handshake, `tools/list`), for
`mcp-server-time` (Python) and `server-everything` (node, when `make mcp-servers`
installed it). Prints a Markdown table for README.md, with the load average.

    .venv/bin/python -m bench.mcp_overhead [--calls 400]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from roster.agent import AgentRequest
from roster.llm import LLMAgent
from roster.mcp.pool import AgentTools, McpPool
from roster.mcp.spec import McpServerSpec
from roster.model_client import ModelClient, ModelSettings, ToolRequest
from roster.providers import DEFAULT, Providers
from roster.refs import NoSecrets
from roster.spec import LLMAgentSpec, Policy
from storage.scrubber import Scrubber

ROOT = Path(__file__).resolve().parent.parent
TIME_SERVER = str(Path(sys.executable).parent / "mcp-server-time")
EVERYTHING = ROOT / ".venv" / "node" / "mcp" / "node_modules" / ".bin" / "mcp-server-everything"
ARGUMENTS = {"timezone": "Europe/Paris"}
ROUND = 20


class Run:
    """The little of a run a tool call uses."""

    def process_started(self, pid: int) -> None:
        pass


def scrubber() -> Scrubber:
    """A scrubber that knows a vault's worth of secrets, as a deck's does."""
    scrub = Scrubber()
    scrub.use("vault", {f"S{i}": f"secret-value-{i:04d}-{'x' * 20}" for i in range(50)})
    return scrub


def agent(pool: McpPool) -> LLMAgent:
    spec = LLMAgentSpec(name="bench", kind="llm", model="m", mcp=("time",))
    return LLMAgent(
        spec,
        providers=Providers({DEFAULT: ModelClient(ModelSettings(base_url=None, api_key="k"))}),
        tools={},
        more_tools=AgentTools(pool, ("time",)),
    )


async def direct_calls(session: ClientSession, n: int, out: list[float]) -> None:
    for _ in range(n):
        began = time.perf_counter()
        await session.call_tool("get_current_time", ARGUMENTS)
        out.append(time.perf_counter() - began)


async def deck_calls(bench: LLMAgent, n: int, out: list[float]) -> None:
    request = AgentRequest(run_id="r", chat_id="c", user_id="u", text="")
    call = ToolRequest("1", "time__get_current_time", '{"timezone": "Europe/Paris"}')
    for _ in range(n):
        began = time.perf_counter()
        result = await bench._call_tool(request, call, Run())  # type: ignore[arg-type]
        out.append(time.perf_counter() - began)
        assert result.startswith("{"), result


async def overhead(calls: int) -> dict[str, float]:
    policies = {"time__get_current_time": Policy()}
    spec = McpServerSpec(name="time", command=(TIME_SERVER,), approval="never")
    pool = McpPool([spec], policies=policies, secrets=NoSecrets(), redact=scrubber().redact)
    bench = agent(pool)
    await bench._refresh_tools()
    direct: list[float] = []
    through: list[float] = []
    params = StdioServerParameters(command=TIME_SERVER, args=[])
    try:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            await direct_calls(session, ROUND, [])  # warm both up
            await deck_calls(bench, ROUND, [])
            for _ in range(calls // ROUND):
                await direct_calls(session, ROUND, direct)
                await deck_calls(bench, ROUND, through)
    finally:
        await pool.close()
    return {
        "direct_p50": statistics.median(direct) * 1000,
        "direct_p95": statistics.quantiles(direct, n=20)[-1] * 1000,
        "deck_p50": statistics.median(through) * 1000,
        "deck_p95": statistics.quantiles(through, n=20)[-1] * 1000,
    }


async def start_time(command: tuple[str, ...], name: str, times: int = 5) -> float:
    took = []
    for _ in range(times):
        pool = McpPool(
            [McpServerSpec(name=name, command=command)],
            policies={},
            secrets=NoSecrets(),
            redact=str,
        )
        began = time.perf_counter()
        await pool.tools(name)
        took.append(time.perf_counter() - began)
        await pool.close()
    return statistics.median(took) * 1000


async def main(calls: int) -> None:
    load_before = os.getloadavg()[0]
    figures = await overhead(calls)
    starts: dict[str, Any] = {"mcp-server-time (Python)": await start_time((TIME_SERVER,), "time")}
    if EVERYTHING.exists():
        everything = (str(EVERYTHING), "stdio")
        starts["server-everything (node)"] = await start_time(everything, "everything")
    load_after = os.getloadavg()[0]
    extra = figures["deck_p50"] - figures["direct_p50"]
    print(
        f"{calls} calls each, alternating rounds of {ROUND}; load average "
        f"{load_before:.2f} before, {load_after:.2f} after ({os.cpu_count()} CPUs)\n"
    )
    print("| tool call (stdio, get_current_time) | p50 | p95 |")
    print("|---|---|---|")
    print(
        f"| direct (`mcp` ClientSession) | {figures['direct_p50']:.2f} ms "
        f"| {figures['direct_p95']:.2f} ms |"
    )
    print(
        f"| through agentdeck (llm agent's tool path) | {figures['deck_p50']:.2f} ms "
        f"| {figures['deck_p95']:.2f} ms |"
    )
    print(f"| **overhead** | **{extra:.2f} ms** | |\n")
    print("| server start (to tools listed), median of 5 | |")
    print("|---|---|")
    for name, took in starts.items():
        print(f"| {name} | {took:.0f} ms |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    asyncio.run(main(parser.parse_args().calls))
