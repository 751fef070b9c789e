"""Slack: how fast events are acknowledged, answered, and shown as "working…".

Runs the bot (slack-bolt in HTTP mode, a SQLite deck) in a child process, and the fake
Slack with the load (signed requests) in this one, so the two don't share a CPU loop;
then prints a Markdown table for README.md:

    .venv/bin/python -m bench.slack_latency [--events 300] [--channels 30]

Slack wants every event acknowledged within 3 s; issue 3 wants a first reply within a
second. "ack" is the HTTP round trip of a signed event; "answer" is from posting the
event until the echo agent's reply is stored by the fake Web API; "working" is until
the first message of a 3-second command agent appears.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
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


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p50 = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"{p50 * 1000:.0f} | {p95 * 1000:.0f} | {ordered[-1] * 1000:.0f}"


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
    http: aiohttp.ClientSession, fake: FakeSlack, url: str, n: int, channel: str
) -> tuple[float, float]:
    started = time.perf_counter()
    ts, ack = await mention(http, url, n, channel, f"hello {n}")
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


async def bench(events: int, channels: int) -> None:
    load_before = os.getloadavg()[0]
    fake = await FakeSlack().start()
    bot = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.slack_latency",
        "--bot",
        fake.api_url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert bot.stdin is not None
    assert bot.stdout is not None
    try:
        async with asyncio.timeout(60):
            address = (await bot.stdout.readline()).decode().strip()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            work = [one(http, fake, address, n, f"C{n % channels}") for n in range(1, events + 1)]
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
    print(f"{events} mentions at once over {channels} channels (ms):\n")
    print("| measure | p50 | p95 | max |\n|---|---|---|---|")
    print(f"| ack (HTTP 200 to Slack) | {percentiles(acks)} |")
    print(f"| answer in the thread | {percentiles(answers)} |")
    print(f'\nfirst "working…" of a 3 s agent: {working * 1000:.0f} ms')
    load_after = os.getloadavg()[0]
    print(
        f"\n{time.strftime('%Y-%m-%d')} · {os.cpu_count()} cores · "
        f"load average {load_before:.2f} before, {load_after:.2f} after"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--channels", type=int, default=30)
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
    with tempfile.TemporaryDirectory() as data:
        os.environ["AGENTDECK_DATA_DIR"] = str(Path(data))
        asyncio.run(bench(args.events, args.channels))


if __name__ == "__main__":
    main()
