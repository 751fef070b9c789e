"""Telegram: throughput, latency, idle memory, start-up and concurrency, against a fake Bot API,
for agentdeck and the bots people would pick instead, measured in the same run.

Every party runs in its own process: the fake Telegram Bot API
(`tests.fakes.telegram_server`), the fake OpenAI API (`tests.fakes.openai_server`),
and the bot. The bots: `agentdeck run`; the bare python-telegram-bot bots,
`bench/ptb_echo_bot.py` (echo) and `bench/ptb_llm_bot.py` (the same model call as
the llm agent, through the `openai` SDK); and Errbot with its Telegram backend and a
plugin making that call (`bench/errbot_floor/`, run from `.venv-peers`, made by
`make bench-peers`; left out, and said so, when that venv is missing). This script only
drives the fake over HTTP and reads its timings (`time.perf_counter`, one monotonic
clock for all processes on Linux).

    .venv/bin/python -m bench.telegram_bench [--runs 3] [--only throughput,llm,latency,idle,slow]

Each run measures every bot in turn, interleaved, and prints the load average before
and after it; the table shows each figure's range (min-max) over the runs. The bot's
flood pacing is switched off (`messages_per_second = 0`): the fake has no flood limit
and the other bots have none.

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
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
AGENTDECK = str(Path(PYTHON).with_name("agentdeck"))
ERRBOT = ROOT / ".venv-peers" / "bin" / "errbot"
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
def process(
    *argv: str, env: dict[str, str] | None = None, quiet: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` in the checkout; stop it with SIGTERM (then SIGKILL after 20 s)."""
    child = subprocess.Popen(
        argv,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL if quiet else None,
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
        """When the bot first asked for updates (perf_counter)."""
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


@dataclass(frozen=True)
class Command:
    """How to start one bot: its argv and environment (besides this process's)."""

    argv: list[str]
    env: dict[str, str]
    quiet: bool = False  # its stderr dropped (Errbot logs every connection-pool warning)


# A bot: given the fake and the model's URL, a context that prepares and yields its Command.
Launcher = Callable[[Fake, str], AbstractContextManager[Command]]


@contextlib.contextmanager
def bytecode_cache() -> Iterator[dict[str, str]]:
    """Environment for the bots' processes: one bytecode cache they write and share."""
    with tempfile.TemporaryDirectory() as cache:
        yield {"PYTHONPYCACHEPREFIX": cache, "PYTHONDONTWRITEBYTECODE": ""}


def agentdeck_command(agent: str) -> Launcher:
    """`agentdeck run` with an `agent` ("echo" or "llm") on a fresh data dir."""

    @contextlib.contextmanager
    def launch(fake: Fake, llm_url: str) -> Iterator[Command]:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "agentdeck.toml"
            config.write_text(config_text(agent, llm_url).replace("BASE_URL", fake.base_url))
            env = {
                "AGENTDECK_DATA_DIR": str(Path(tmp) / "data"),
                "TG_TOKEN": TOKEN,
                "BENCH_OPENAI_KEY": "sk-bench",
            }
            yield Command([AGENTDECK, "run", "--config", str(config)], env)

    return launch


def ptb_command(script: str) -> Launcher:
    """A bare python-telegram-bot bot from `bench/` (its arguments: Bot API, token, model)."""

    @contextlib.contextmanager
    def launch(fake: Fake, llm_url: str) -> Iterator[Command]:
        argv = [PYTHON, str(ROOT / "bench" / script), fake.base_url, TOKEN, llm_url]
        yield Command(argv, {"OPENAI_API_KEY": "sk-bench"})

    return launch


@contextlib.contextmanager
def errbot_command(fake: Fake, llm_url: str) -> Iterator[Command]:
    """Errbot from `.venv-peers` with `bench/errbot_floor/config.py`, a fresh data dir."""
    with tempfile.TemporaryDirectory() as data:
        env = {
            "ERRBOT_DATA_DIR": data,
            "TG_BASE_URL": fake.base_url,
            "TG_TOKEN": TOKEN,
            "BENCH_LLM_URL": llm_url,
            "OPENAI_API_KEY": "sk-bench",
        }
        argv = [str(ERRBOT), "-c", str(ROOT / "bench" / "errbot_floor" / "config.py")]
        yield Command(argv, env, quiet=True)


@contextlib.contextmanager
def running(
    fake: Fake, launcher: Launcher, llm_url: str, cache: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """Start the bot on a clean fake; yield it and its start time (perf_counter)."""
    with launcher(fake, llm_url) as command:
        fake.reset()
        started = time.perf_counter()
        with process(
            *command.argv, env={**command.env, **(cache or {})}, quiet=command.quiet
        ) as child:
            yield child, started


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


def first_answer(
    fake: Fake, launcher: Launcher, llm_url: str, cache: dict[str, str] | None = None
) -> dict[str, float]:
    """Process start -> first model answer sent, with a message waiting before the start.

    Works for any bot (`launcher` gives its command): `answer` is seconds from starting
    the process to the whole answer first reaching the fake (a `sendMessage`, or the
    `editMessageText` that completes a streamed one), `ready` to its first `getUpdates`,
    `rss` its RSS (MB) 1 s after answering.
    """
    with launcher(fake, llm_url) as command:
        fake.reset()
        fake.enqueue([{"user": USERS[0], "text": "first"}])
        started = time.perf_counter()
        env = {**command.env, **(cache or {})}
        with process(*command.argv, env=env, quiet=command.quiet) as child:
            needle, methods = "echo: first", "sendMessage,editMessageText"
            fake.wait(1, methods=methods, needle=needle)
            timings = fake.timings(methods=methods, needle=needle)
            time.sleep(1)
            rss = rss_mb(child.pid)
    answered = min(call["at"] for call in timings["calls"])
    return {"answer": answered - started, "ready": timings["first_poll"] - started, "rss": rss}


def idle(
    fake: Fake, launcher: Launcher, llm_url: str, cache: dict[str, str] | None = None
) -> dict[str, float]:
    """Start -> first getUpdates, and RSS (MB) then and 3 s after start, no message sent."""
    with running(fake, launcher, llm_url, cache) as (child, started):
        ready = fake.wait_polling()
        at_ready = rss_mb(child.pid)
        time.sleep(max(0.0, started + 3 - time.perf_counter()))
        rss = rss_mb(child.pid)
    return {"ready": ready - started, "rss_at_ready": at_ready, "rss": rss}


@dataclass(frozen=True)
class Bot:
    name: str  # a column of the table
    echo: Launcher | None  # the bot answering with the text itself
    llm: Launcher  # the bot making one model call per message


AGENTDECK_BOT = Bot("agentdeck", agentdeck_command("echo"), agentdeck_command("llm"))
PTB_BOT = Bot("bare PTB", ptb_command("ptb_echo_bot.py"), ptb_command("ptb_llm_bot.py"))
ERRBOT_BOT = Bot("Errbot", None, errbot_command)


class Figures:
    """Each (measure, bot)'s value from every run; printed as ranges."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], list[float]] = {}

    def add(self, measure: str, bot: str, value: float) -> None:
        self.values.setdefault((measure, bot), []).append(value)

    def range(self, measure: str, bot: str, fmt: str, unit: str) -> str:
        values = self.values.get((measure, bot))
        if not values:
            return "—"
        low, high = f"{min(values):{fmt}}", f"{max(values):{fmt}}"
        return f"{low} {unit}" if low == high else f"{low}-{high} {unit}"


@dataclass(frozen=True)
class Setting:
    """What one run measures against: the fake, the model's URLs, the bytecode cache."""

    fake: Fake
    llm_url: str
    slow_url: str
    cache: dict[str, str]


def measure_echo(bot: Bot, at: Setting, figures: Figures) -> None:
    if bot.echo is not None:
        with running(at.fake, bot.echo, at.llm_url, at.cache):
            figures.add("echo", bot.name, burst(at.fake))


def measure_llm(bot: Bot, at: Setting, figures: Figures) -> None:
    with running(at.fake, bot.llm, at.llm_url, at.cache):
        figures.add("llm", bot.name, burst(at.fake))


def measure_latency(bot: Bot, at: Setting, figures: Figures) -> None:
    with running(at.fake, bot.llm, at.llm_url, at.cache):
        lat = one_at_a_time(at.fake)
    figures.add("p50", bot.name, statistics.median(lat) * 1000)
    figures.add("p95", bot.name, percentile(lat, 0.95) * 1000)


def measure_idle(bot: Bot, at: Setting, figures: Figures) -> None:
    for key, value in idle(at.fake, bot.llm, at.llm_url, at.cache).items():
        figures.add(key, bot.name, value)
    for key, value in first_answer(at.fake, bot.llm, at.llm_url, at.cache).items():
        figures.add(f"first {key}", bot.name, value)
    if bot is AGENTDECK_BOT:
        with running(at.fake, bot.llm, at.llm_url) as (_, compiling):
            figures.add("uncached", bot.name, at.fake.wait_polling() - compiling)


def measure_slow(bot: Bot, at: Setting, figures: Figures) -> None:
    with running(at.fake, bot.llm, at.slow_url, at.cache):
        figures.add("slow", bot.name, slow_model(at.fake))


MEASURES: dict[str, Callable[[Bot, Setting, Figures], None]] = {
    "throughput": measure_echo,
    "llm": measure_llm,
    "latency": measure_latency,
    "idle": measure_idle,
    "slow": measure_slow,
}


ROWS = [  # measure key, label, format, unit, agentdeck's target
    ("echo", "1,000 msgs / 50 chats, echo (bare PTB: its echo bot)", ".0f", "msg/s", "≥ bare PTB"),
    ("llm", "1,000 msgs / 50 chats, one model call each (instant model)", ".0f", "msg/s", "≥ 300"),
    ("p50", "200 msgs one at a time, model call each: p50", ".1f", "ms", "< 5 ms"),
    ("p95", "same: p95", ".1f", "ms", "≤ Errbot, ≤ 1.25x bare PTB"),
    ("slow", "50 chats at once, model takes 1 s: all answered", ".2f", "s", "< 1.3 s"),
    ("ready", "start → first getUpdates (model configured)", ".2f", "s", "< 0.8 s"),
    ("uncached", "same, without the bench's bytecode cache", ".2f", "s", ""),
    ("first answer", "start → first model answer sent (message waiting)", ".2f", "s", "≤ 0.5 s"),
    ("rss_at_ready", "RSS at the first getUpdates", ".0f", "MB", ""),
    ("rss", "idle RSS 3 s after start", ".0f", "MB", "≤ 75 MB"),
    ("first rss", "RSS 1 s after the first model answer", ".0f", "MB", "≤ 95 MB"),
]


def warm_caches(bots: list[Bot], fake: Fake, llm_url: str, cache: dict[str, str]) -> None:
    """Start each bot once and let it answer: writes the bytecode cache they all use,
    as any install or first run has (this environment may set PYTHONDONTWRITEBYTECODE)."""
    for bot in bots:
        first_answer(fake, bot.llm, llm_url, cache)


def run(only: set[str], runs: int, bots: list[Bot]) -> tuple[Figures, list[tuple[float, float]]]:
    figures = Figures()
    loads: list[tuple[float, float]] = []
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
        bytecode_cache() as cache,
    ):
        for port in (tg_port, ai_port, slow_port):
            wait_for_port(port)
        setting = Setting(fake, llm_url, slow_url, cache)
        if "idle" in only:
            warm_caches(bots, fake, llm_url, cache)
        for n in range(1, runs + 1):
            before = os.getloadavg()[0]
            print(f"run {n} of {runs}: load average {before:.2f} …", end=" ", flush=True)
            for name, measure in MEASURES.items():
                if name in only:
                    for bot in bots:  # interleaved: each bot in turn, measure by measure
                        measure(bot, setting, figures)
            after = os.getloadavg()[0]
            print(f"{after:.2f}", flush=True)
            loads.append((before, after))
    return figures, loads


def ratio_rows(figures: Figures) -> list[str]:
    """agentdeck against the bare PTB bot, run by run."""
    rows = []
    for key, label in (("echo", "echo msg/s"), ("llm", "llm msg/s"), ("p95", "p95")):
        ours = figures.values.get((key, AGENTDECK_BOT.name), [])
        theirs = figures.values.get((key, PTB_BOT.name), [])
        ratios = [a / b for a, b in zip(ours, theirs, strict=False) if b]
        if ratios:
            rows.append(
                f"| ratio agentdeck / bare PTB, {label} | {min(ratios):.2f}-{max(ratios):.2f}x |"
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="throughput,llm,latency,idle,slow")
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    bots = [AGENTDECK_BOT, PTB_BOT]
    if ERRBOT.exists():
        bots.append(ERRBOT_BOT)
    else:
        print(f"Errbot left out: {ERRBOT} is missing (`make bench-peers` makes it)")
    figures, loads = run(set(options.only.split(",")), options.runs, bots)
    low = min(min(pair) for pair in loads)
    high = max(max(pair) for pair in loads)
    print(
        f"\n{time.strftime('%Y-%m-%d')} · {platform.machine()} · {os.cpu_count()} cores · "
        f"Python {platform.python_version()} · {options.runs} runs, ranges · "
        f"load average {low:.1f}-{high:.1f}\n"
    )
    names = [bot.name for bot in bots]
    print("| measure | " + " | ".join(names) + " | target (agentdeck) |")
    print("|---" * (len(names) + 2) + "|")
    for key, label, fmt, unit, target in ROWS:
        cells = [figures.range(key, name, fmt, unit) for name in names]
        if any(cell != "—" for cell in cells):
            print(f"| {label} | " + " | ".join(cells) + f" | {target} |")
    ratios = ratio_rows(figures)
    if ratios:
        print("\n| ratio | range |\n|---|---|")
        print("\n".join(ratios))


if __name__ == "__main__":
    main()
