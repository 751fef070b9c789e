"""Slack: how fast events are acknowledged, answered, and shown as "working…".

Runs the bot (slack-bolt in HTTP mode, a SQLite deck) in a child process, and the fake
Slack with the load (signed requests) in this one, so the two don't share a CPU loop;
then prints Markdown tables for docs/benchmarks.md and README.md:

    .venv/bin/python -m bench.slack_latency [--events 1,50,300] [--runs 3] [--base DIR]

Slack wants every event acknowledged within 3 s (it sends it again after that); issue 21
wants p99 ≤ 1 s for 300 at once. "ack" is the HTTP round trip of a signed event; "answer"
is from posting the event until the echo agent's reply is stored by the fake Web API;
"working" is until the first message of a 3-second command agent appears, after the
burst. Each run starts a fresh bot on a fresh data directory. `--base DIR` runs the bot
of another checkout (say `git worktree add /tmp/base main`) too, interleaved with this
one's runs, so both are measured under the same load; the load average is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bot.app import open_deck
from bot.config import parse_config
from bot.transports.slack import SlackTransport
from tests.fakes.slack_server import (
    APP_TOKEN,
    BOT_TOKEN,
    BOT_USER,
    SIGNING_SECRET,
    FakeSlack,
    event_body,
    sign,
)

CONFIG = {
    "deck": {"default_agent": "echo", "rate_limit_per_minute": 0},  # the load is one user
    "users": [{"id": "slack:UOP", "role": "operator"}],
    "agents": [
        {"name": "echo", "kind": "echo"},
        {"name": "slow", "kind": "command", "command": ["sleep", "{input}"], "timeout": 20},
    ],
}
HEADER = """\
| code | mentions | load | ack p50 | ack p99 | ack max | answer p50 | answer p99 | working |
|---|---|---|---|---|---|---|---|---|"""
HEADER = """\
| code | mentions | load | ack p50 | ack p99 | ack max | answer p50 | answer p99 | working |
|---|---|---|---|---|---|---|---|---|"""
HERE = str(Path(__file__).resolve().parent.parent)


@dataclass(frozen=True, slots=True)
class Run:
    code: str  # "this" or "base"
    events: int
    acks: list[float]
    answers: list[float]
    working: float
    load: float  # 1-minute load average when the run began


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def spread(values: list[float]) -> str:
    """A range over runs, as the README gives them: `lo-hi`, or one figure when equal."""
    lo, hi = ms(min(values)), ms(max(values))
    return lo if lo == hi else f"{lo}-{hi}"


async def mention(
    http: aiohttp.ClientSession, url: str, n: int, channel: str, text: str
) -> tuple[str, float]:
    ts = f"1700000000.{n:06d}"
    event = {
        "type": "app_mention",
        "user": "UOP",
        "text": f"<@{BOT_USER}> {text}",
        "ts": ts,
        "channel": channel,
    }
    body = event_body(event, event_id=f"Ev{n}")
    headers = {"Content-Type": "application/json", **sign(body)}
    started = time.perf_counter()
    async with http.post(url, data=body, headers=headers) as resp:
        await resp.read()
        assert resp.status == 200, resp.status
    return ts, time.perf_counter() - started


async def answered(fake: FakeSlack, channel: str, ts: str, started: float) -> float:
    await fake.wait_for(lambda f: f.in_thread(channel, ts))
    return time.perf_counter() - started


async def shown(fake: FakeSlack, channel: str, ts: str, needle: str, started: float) -> float:
    await fake.wait_for(lambda f: [m for m in f.in_thread(channel, ts) if needle in m.shown])
    return time.perf_counter() - started


async def one(
    http: aiohttp.ClientSession, fake: FakeSlack, url: str, n: int, *, channel: str, text: str
) -> tuple[float, float]:
    started = time.perf_counter()
    ts, ack = await mention(http, url, n, channel, text.format(n=n))
    return ack, await answered(fake, channel, ts, started)


async def serve_bot(api_url: str) -> None:
    """The child: run the deck, print where Slack should post, stop when stdin closes."""
    config = parse_config(
        {**CONFIG, "slack": {"mode": "http", "port": 0, "base_url": api_url}}, source="bench"
    )
    async with open_deck(config) as (_deck, transports):
        (slack,) = transports
        assert isinstance(slack, SlackTransport)
        print(slack.address, flush=True)
        await asyncio.to_thread(sys.stdin.read)


async def burst(
    code: str, where: str, *, events: int, channels: int, settle: float, text: str
) -> Run:
    """One bot (of the checkout at `where`), a burst of `events` mentions, then the 3 s agent."""
    fake = await FakeSlack().start()
    with tempfile.TemporaryDirectory() as data:
        env = os.environ | {"AGENTDECK_DATA_DIR": data, "PYTHONPATH": where}
        bot = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "bench.slack_latency", "--bot", fake.api_url),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=where,
            env=env,
        )
        assert bot.stdin is not None
        assert bot.stdout is not None
        try:
            async with asyncio.timeout(60):
                address = (await bot.stdout.readline()).decode().strip()
            await asyncio.sleep(settle)
            load = os.getloadavg()[0]
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as http:
                numbers = range(1, events + 1)
                channel = [f"C{n % channels}" for n in numbers]
                work = [
                    one(http, fake, address, n, channel=channel[n - 1], text=text) for n in numbers
                ]
                results = await asyncio.gather(*work)
                started = time.perf_counter()
                ts, _ = await mention(http, address, events + 1, "CSLOW", "@slow 3")
                working = await shown(fake, "CSLOW", ts, "working…", started)
        finally:
            bot.stdin.close()
            await bot.wait()
            await fake.stop()
    acks = [ack for ack, _ in results]
    answers = [answer for _, answer in results]
    return Run(code, events, acks, answers, working, load)


def per_run(run: Run) -> str:
    acks, answers = run.acks, run.answers
    return (
        f"| {run.code} | {run.events} | {run.load:.2f} | {ms(quantile(acks, 0.5))} | "
        f"{ms(quantile(acks, 0.99))} | {ms(max(acks))} | {ms(quantile(answers, 0.5))} | "
        f"{ms(quantile(answers, 0.99))} | {ms(run.working)} |"
    )


def summary(runs: list[Run]) -> str:
    """Ranges over the runs, per code and burst size."""
    lines = ["| code | mentions at once | ack p50 | ack p99 | answer p50 | working |"]
    lines.append("|---|---|---|---|---|---|")
    for code in dict.fromkeys(r.code for r in runs):
        for events in dict.fromkeys(r.events for r in runs):
            mine = [r for r in runs if r.code == code and r.events == events]
            lines.append(
                f"| {code} | {events} | {spread([quantile(r.acks, 0.5) for r in mine])} | "
                f"{spread([quantile(r.acks, 0.99) for r in mine])} | "
                f"{spread([quantile(r.answers, 0.5) for r in mine])} | "
                f"{spread([r.working for r in mine])} |"
            )
    return "\n".join(lines)


async def bench(
    sizes: list[int], runs: int, *, channels: int, base: str | None, settle: float, text: str
) -> None:
    codes = ["this"] if base is None else ["base", "this"]
    print(f"load average at start: {os.getloadavg()}, {os.cpu_count()} CPUs")
    print(f"mentions ({text!r}) over {channels} channels, times in ms\n")
    print(HEADER)
    done: list[Run] = []
    for _ in range(runs):
        for events in sizes:
            for code in codes:  # interleaved: both see the same load
                where = HERE if code == "this" else str(base)
                run = burst(code, where, events=events, channels=channels, settle=settle, text=text)
                done.append(await run)
                print(per_run(done[-1]), flush=True)
    print(f"\nranges over {runs} runs (ms); load average at the end: {os.getloadavg()}\n")
    print(summary(done))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", default="300", help="burst sizes, comma-separated")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--channels", type=int, default=30)
    parser.add_argument("--base", metavar="DIR", help="also run the bot of this checkout")
    parser.add_argument(
        "--text",
        default="hello {n}",
        help='what each mention says; "@echo hello {n}" names the agent (a write per thread)',
    )
    parser.add_argument(
        "--settle", type=float, default=0.0, help="wait after the bot is up (to attach py-spy)"
    )
    parser.add_argument("--bot", metavar="API_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ |= {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": APP_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
    }
    if args.bot:
        asyncio.run(serve_bot(args.bot))
        return
    sizes = [int(size) for size in args.events.split(",")]
    load = bench(
        sizes, args.runs, channels=args.channels, base=args.base, settle=args.settle, text=args.text
    )
    asyncio.run(load)


if __name__ == "__main__":
    main()
