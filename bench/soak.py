"""Soak: 10,000 messages through the fake Telegram Bot API into `agentdeck run` (echo agent).

Three processes: the fake Bot API (`tests.fakes.telegram_server`, driven over HTTP), the
bot (`agentdeck run` with `[metrics]` on), and this script. Messages go in batches from
50 chats; each batch is answered before the next is queued, so the bot works at its own
pace for the whole run. Before, during and after, the script reads the bot's resident
memory (`/proc/<pid>/status` VmRSS) and its open asyncio tasks, running runs and queue
lengths from the metrics endpoint.

    .venv/bin/python -m bench.soak [--messages 10000] [--batch 250]

Prints a Markdown table for README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.telegram_bench import free_port

ROOT = Path(__file__).resolve().parent.parent
AGENTDECK = str(Path(sys.executable).with_name("agentdeck"))
TOKEN = "123456:TEST-token"  # noqa: S105 (the fake server's token)
CHATS = 50
USERS = [3000 + n for n in range(CHATS)]


def get(url: str, body: Any = None, timeout: float = 150) -> bytes:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 (loopback only)
        url, data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return bytes(response.read())


def wait_until(check: Any, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if check():
                return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


@contextlib.contextmanager
def process(*argv: str, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    try:
        yield child
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


class FakeTelegram:
    """The fake Bot API in its own process, driven over its `/_fake/...` routes."""

    def __init__(self, port: int) -> None:
        self.root = f"http://127.0.0.1:{port}"
        self.base_url = f"{self.root}/bot"

    def enqueue(self, count: int, start: int) -> None:
        messages = [
            {"user": USERS[n % CHATS], "text": f"soak {n}"} for n in range(start, start + count)
        ]
        get(f"{self.root}/_fake/enqueue", messages)

    def wait_answers(self, count: int) -> None:
        query = urllib.parse.urlencode({"count": count, "needle": "soak", "timeout": 120})
        answer = json.loads(get(f"{self.root}/_fake/wait?{query}"))
        if answer["timeout"]:
            raise RuntimeError(f"only {answer['count']} of {count} answers arrived")

    def polled(self) -> bool:
        timings = json.loads(get(f"{self.root}/_fake/timings"))
        return timings["first_poll"] is not None


@dataclass(frozen=True)
class Sample:
    messages: int
    seconds: float
    rss_mib: float
    tasks_all: int
    tasks_deck: int
    runs_active: int
    inbox: int
    outbox: int


def metrics(url: str) -> dict[str, float]:
    values = {}
    for line in get(url, timeout=10).decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def sample(pid: int, url: str, messages: int, started: float) -> Sample:
    m = metrics(url)
    return Sample(
        messages=messages,
        seconds=time.monotonic() - started,
        rss_mib=rss_mib(pid),
        tasks_all=int(m['agentdeck_tasks{scope="all"}']),
        tasks_deck=int(m['agentdeck_tasks{scope="deck"}']),
        runs_active=int(m["agentdeck_runs_active"]),
        inbox=int(m['agentdeck_queue_length{queue="inbox"}']),
        outbox=int(m['agentdeck_queue_length{queue="outbox"}']),
    )


def config_text(base_url: str, metrics_port: int) -> str:
    users = "\n".join(f'[[users]]\nid = "telegram:{u}"\nrole = "operator"' for u in USERS)
    return f"""
[deck]
default_agent = "echo"
rate_limit_per_minute = 0
[telegram]
token = "env:TG_TOKEN"
base_url = "{base_url}"
messages_per_second = 0
group_messages_per_minute = 0
[scheduler]
enabled = false
[metrics]
enabled = true
port = {metrics_port}
[[agents]]
name = "echo"
kind = "echo"
{users}
"""


def settle(pid: int, url: str, total: int, started: float) -> Sample:
    """Wait until no run is active and the inbox is drained, then sample."""
    deadline = time.monotonic() + 30
    while True:
        now = sample(pid, url, total, started)
        quiet = now.runs_active == 0 and now.inbox == 0 and now.tasks_deck == 0
        if quiet or time.monotonic() > deadline:
            return now
        time.sleep(0.2)


def soak(total: int, batch: int) -> list[Sample]:
    fake_port, metrics_port = free_port(), free_port()
    fake = FakeTelegram(fake_port)
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    server = (sys.executable, "-m", "tests.fakes.telegram_server", "--port", str(fake_port))
    with process(*server, env={}), tempfile.TemporaryDirectory() as tmp:
        wait_until(lambda: get(f"{fake.root}/_fake/timings", timeout=1), "the fake Bot API")
        config = Path(tmp) / "soak.toml"
        config.write_text(config_text(fake.base_url, metrics_port))
        env = {"AGENTDECK_DATA_DIR": str(Path(tmp) / "data"), "TG_TOKEN": TOKEN}
        with process(AGENTDECK, "run", "--config", str(config), env=env) as bot:
            wait_until(fake.polled, "the bot's first poll")
            wait_until(lambda: metrics(url), "the metrics endpoint")
            fake.enqueue(CHATS, 0)  # warm-up: one message per chat, not counted
            fake.wait_answers(CHATS)
            samples = [replace(settle(bot.pid, url, 0, time.monotonic()), seconds=0.0)]
            started = time.monotonic()
            sent = 0
            while sent < total:
                count = min(batch, total - sent)
                fake.enqueue(count, CHATS + sent)
                sent += count
                fake.wait_answers(CHATS + sent)
                if sent % (total // 5) == 0 and sent < total:
                    samples.append(sample(bot.pid, url, sent, started))
            samples.append(sample(bot.pid, url, sent, started))
            samples.append(settle(bot.pid, url, sent, started))
    return samples


def table(samples: list[Sample]) -> str:
    rows = [
        "| messages answered | s | RSS MiB | asyncio tasks (process) | deck tasks | "
        "runs active | inbox unhandled | outbox pending |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, s in enumerate(samples):
        label = f"{s.messages:,}" + (" (start)" if n == 0 else "")
        label += " (settled)" if n == len(samples) - 1 else ""
        rows.append(
            f"| {label} | {s.seconds:.1f} | {s.rss_mib:.1f} | {s.tasks_all} | {s.tasks_deck} | "
            f"{s.runs_active} | {s.inbox} | {s.outbox} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=250)
    options = parser.parse_args()
    samples = soak(options.messages, options.batch)
    last = samples[-2]
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(
        f"{options.messages:,} messages in {last.seconds:.1f} s "
        f"({options.messages / last.seconds:.0f} msg/s)\n"
    )
    print(table(samples))


if __name__ == "__main__":
    main()
