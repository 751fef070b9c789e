"""Telegram: throughput, latency, idle memory, start-up and concurrency, against a fake Bot API.

Every party runs in its own process: the fake Telegram Bot API
(`tests.fakes.telegram_server`), the fake OpenAI API (`tests.fakes.openai_server`),
and the bot (`agentdeck run`, or the bare python-telegram-bot echo bot in
`bench/ptb_echo_bot.py`). This script only drives the fake over HTTP and reads its
timings (`time.perf_counter`, one monotonic clock for all processes on Linux).

    .venv/bin/python -m bench.telegram_bench [--only throughput,llm,latency,idle,slow]

Prints a Markdown table for README.md. The bot's flood pacing is switched off
(`messages_per_second = 0`): the fake has no flood limit and the bare PTB bot has none.

The bot runs with its modules' bytecode cached, as after any install (pip compiles
them) or first run: `PYTHONDONTWRITEBYTECODE=1`, set in some environments, would
otherwise make every start compile this checkout's ~100 modules again. The idle mode
also measures one start that way, for comparison.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
AGENTDECK = str(Path(PYTHON).with_name("agentdeck"))
TOKEN = "123456:TEST-token"  # noqa: S105 (the fake server's token)
CHATS = 50
USERS = [2000 + n for n in range(CHATS)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(url: str, body: Any = None, timeout: float = 120) -> Any:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 (loopback)
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (loopback)
        return json.loads(response.read())


@contextlib.contextmanager
def process(*argv: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(
        argv, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL
    )
    try:
        yield child
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port}")


class Fake:
    """The fake Telegram, driven over HTTP."""

    def __init__(self, port: int) -> None:
        self.root = f"http://127.0.0.1:{port}"
        self.base_url = f"{self.root}/bot"

    def reset(self) -> None:
        http(f"{self.root}/_fake/reset", {})

    def enqueue(self, messages: list[dict[str, Any]]) -> list[int]:
        return list(http(f"{self.root}/_fake/enqueue", messages))

    def wait(self, count: int, *, methods: str = "sendMessage", needle: str = "") -> None:
        query = urllib.parse.urlencode(
            {"count": count, "methods": methods, "needle": needle, "timeout": 120}
        )
        answer = http(f"{self.root}/_fake/wait?{query}", timeout=130)
        if answer["timeout"]:
            raise RuntimeError(f"only {answer['count']} of {count} {methods} arrived")

    def timings(self, *, methods: str = "sendMessage", needle: str = "") -> dict[str, Any]:
        query = urllib.parse.urlencode({"methods": methods, "needle": needle})
        return dict(http(f"{self.root}/_fake/timings?{query}"))

    def wait_polling(self) -> float:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            first = self.timings()["first_poll"]
            if first is not None:
                return float(first)
            time.sleep(0.01)
        raise RuntimeError("the bot never polled")


def config_text(agent: str, llm_url: str) -> str:
    users = "\n".join(f'[[users]]\nid = "telegram:{u}"\nrole = "operator"' for u in USERS)
    agents = {
        "echo": '[[agents]]\nname = "echo"\nkind = "echo"',
        "llm": '[[agents]]\nname = "llm"\nkind = "llm"\nmodel = "fake"',
    }[agent]
    return f"""
[deck]
default_agent = "{agent}"
rate_limit_per_minute = 0
[llm]
base_url = "{llm_url}"
api_key = "env:BENCH_OPENAI_KEY"
max_retries = 0
[telegram]
token = "env:TG_TOKEN"
base_url = "BASE_URL"
messages_per_second = 0
group_messages_per_minute = 0
{users}
{agents}
"""


@contextlib.contextmanager
def bytecode_cache() -> Iterator[dict[str, str]]:
    """Environment for the bot's processes: one bytecode cache they write and share."""
    with tempfile.TemporaryDirectory() as cache:
        yield {"PYTHONPYCACHEPREFIX": cache, "PYTHONDONTWRITEBYTECODE": ""}


@contextlib.contextmanager
def agentdeck(
    fake: Fake, agent: str, llm_url: str, cache: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """Run `agentdeck run` on a fresh data dir; yield it and its start time."""
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "agentdeck.toml"
        config.write_text(config_text(agent, llm_url).replace("BASE_URL", fake.base_url))
        env = {
            "AGENTDECK_DATA_DIR": str(Path(tmp) / "data"),
            "TG_TOKEN": TOKEN,
            "BENCH_OPENAI_KEY": "sk-bench",
            **(cache or {}),
        }
        fake.reset()
        started = time.perf_counter()
        with process(AGENTDECK, "run", "--config", str(config), env=env) as child:
            yield child, started


@contextlib.contextmanager
def bare_ptb(fake: Fake) -> Iterator[subprocess.Popen[bytes]]:
    fake.reset()
    with process(PYTHON, str(ROOT / "bench" / "ptb_echo_bot.py"), fake.base_url, TOKEN) as child:
        yield child


def warm_up(fake: Fake) -> None:
    """One message answered before measuring: the first model call imports `openai`
    (seconds on a small machine); a running deck has long done that."""
    fake.wait_polling()
    fake.enqueue([{"user": USERS[-1], "text": "warm-up"}])
    fake.wait(1, methods="sendMessage,editMessageText", needle="warm-up")
    fake.reset()
    time.sleep(0.3)  # let the next long poll settle


def burst(fake: Fake, total: int = 1000) -> float:
    """`total` messages from 50 chats queued at once; messages answered per second."""
    warm_up(fake)
    messages = [{"user": USERS[n % CHATS], "text": f"m{n}"} for n in range(total)]
    fake.enqueue(messages)
    fake.wait(total)
    timings = fake.timings()
    first = min(timings["enqueued"].values())
    last = max(call["at"] for call in timings["calls"])
    return total / (last - first)


def one_at_a_time(fake: Fake, count: int = 200) -> list[float]:
    """Latency: enqueue one message, wait for its answer, next; enqueue -> sendMessage."""
    warm_up(fake)
    for n in range(count):
        fake.enqueue([{"user": USERS[0], "text": f"q{n}"}])
        fake.wait(n + 1)
    timings = fake.timings()
    enqueued = sorted(timings["enqueued"].values())
    arrived = sorted(call["at"] for call in timings["calls"])
    return [a - e for e, a in zip(enqueued, arrived, strict=True)]


def slow_model(fake: Fake) -> float:
    """50 chats at once to an llm agent whose model takes 1 s: wall time until all answered."""
    warm_up(fake)
    fake.enqueue([{"user": user, "text": f"slow {user}"} for user in USERS])
    needle = "echo: slow"
    fake.wait(CHATS, methods="sendMessage,editMessageText", needle=needle)
    timings = fake.timings(methods="sendMessage,editMessageText", needle=needle)
    return max(c["at"] for c in timings["calls"]) - min(timings["enqueued"].values())


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def first_answer(fake: Fake, llm_url: str, cache: dict[str, str]) -> tuple[float, float]:
    """Process start -> the first model answer sent, its message queued at the fake as the
    process starts (what a restart finds waiting); and the RSS 1 s after that answer."""
    with agentdeck(fake, "llm", llm_url, cache) as (child, started):
        fake.enqueue([{"user": USERS[0], "text": "first"}])
        methods, needle = "sendMessage,editMessageText", "echo: first"
        fake.wait(1, methods=methods, needle=needle)
        answered = min(c["at"] for c in fake.timings(methods=methods, needle=needle)["calls"])
        time.sleep(1)
        return answered - started, rss_mb(child.pid)


def idle(fake: Fake, llm_url: str, cache: dict[str, str]) -> list[tuple[str, str, str]]:
    """Start to the first getUpdates, and RSS then and 3 s later, with an llm agent; start
    to the first model answer, and RSS after it."""
    with agentdeck(fake, "llm", llm_url, cache):  # writes the bytecode cache; one message
        warm_up(fake)  # makes it import what a model call imports too
    with agentdeck(fake, "llm", llm_url, cache) as (child, started):
        first = fake.wait_polling()
        at_first_poll = rss_mb(child.pid)
        time.sleep(3)
        rss = rss_mb(child.pid)
    answer, after_answer = first_answer(fake, llm_url, cache)
    with agentdeck(fake, "llm", llm_url) as (child, compiling):
        uncached = fake.wait_polling()
    return [
        ("start → first getUpdates, llm agent", f"{first - started:.2f} s", "< 0.8 s"),
        ("same, without the bench's bytecode cache", f"{uncached - compiling:.2f} s", ""),
        ("start → first model answer sent (message waiting)", f"{answer:.2f} s", "≤ 0.5 s"),
        ("RSS at the first getUpdates, llm agent", f"{at_first_poll:.0f} MB", ""),
        ("idle RSS 3 s after start, llm agent", f"{rss:.0f} MB", "≤ 75 MB"),
        ("RSS 1 s after the first model answer", f"{after_answer:.0f} MB", "≤ 95 MB"),
    ]


def run(only: set[str]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    tg_port, ai_port, slow_port = free_port(), free_port(), free_port()
    fake = Fake(tg_port)
    llm_url = f"http://127.0.0.1:{ai_port}/v1"
    slow_url = f"http://127.0.0.1:{slow_port}/v1"
    with (
        process(PYTHON, "-m", "tests.fakes.telegram_server", "--port", str(tg_port)),
        process(PYTHON, "-m", "tests.fakes.openai_server", "--port", str(ai_port)),
        process(
            PYTHON, "-m", "tests.fakes.openai_server", "--port", str(slow_port), "--delay", "1"
        ),
    ):
        for port in (tg_port, ai_port, slow_port):
            wait_for_port(port)
        if "throughput" in only:
            with agentdeck(fake, "echo", llm_url):
                ours = burst(fake)
            with bare_ptb(fake):
                theirs = burst(fake)
            rows.append(("1,000 msgs / 50 chats, echo agent", f"{ours:.0f} msg/s", "≥ bare PTB"))
            rows.append(("same, bare PTB echo bot (defaults)", f"{theirs:.0f} msg/s", ""))
            rows.append(("ratio agentdeck / bare PTB", f"{ours / theirs:.2f}x", "≥ 1"))
        if "llm" in only:
            with agentdeck(fake, "llm", llm_url):
                llm = burst(fake)
            rows.append(
                ("1,000 msgs / 50 chats, llm agent (instant model)", f"{llm:.0f} msg/s", "≥ 300")
            )
        if "latency" in only:
            with agentdeck(fake, "llm", llm_url):
                lat = one_at_a_time(fake)
            p50, p95 = statistics.median(lat) * 1000, percentile(lat, 0.95) * 1000
            rows.append(("200 msgs one at a time, llm agent: p50", f"{p50:.1f} ms", "< 5 ms"))
            rows.append(("same: p95", f"{p95:.1f} ms", "< 10 ms"))
        if "idle" in only:
            with bytecode_cache() as cache:
                rows += idle(fake, llm_url, cache)
        if "slow" in only:
            with agentdeck(fake, "llm", slow_url):
                wall = slow_model(fake)
            rows.append(
                ("50 chats at once, model takes 1 s: all answered", f"{wall:.2f} s", "< 1.3 s")
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="throughput,llm,latency,idle,slow")
    options = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows = run(set(options.only.split(",")))
    load_after = os.getloadavg()[0]
    print(
        f"\n{time.strftime('%Y-%m-%d')} · {platform.machine()} · {os.cpu_count()} cores · "
        f"Python {platform.python_version()} · load average {load_before:.1f} → {load_after:.1f}\n"
    )
    print("| measure | result | target |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
