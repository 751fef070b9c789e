"""Team mode on PostgreSQL: Telegram webhook and Slack HTTP, one and two processes.

Each set-up runs `agentdeck run` processes (one or two) on a fresh PostgreSQL database
(created on `AGENTDECK_TEST_PG`'s server and dropped after; never the server restarted)
behind the round-robin balancer (`tests.fakes.round_robin`, its own process), each with
an llm agent on the fake OpenAI server (`tests.fakes.openai_server`) and a `slow` agent
on a second fake whose model takes 1 s. The fake Telegram (its own process) POSTs each
update on a connection of its own, 40 at once as Telegram does by default, one chat's in
order; Slack's events are POSTed, signed, by this process, which also plays the Slack
Web API (`tests.fakes.slack_server`) the answers go to.

    .venv/bin/python -m bench.team_bench [--setups telegram-1,telegram-2,slack-1,slack-2]
        [--runs 3] [--cores 0,1]

Measured per set-up and run: 1,000 messages from 50 chats queued at once (messages
answered per second, first queued to last answered), 200 messages one at a time (queued
to answered, p50 / p95), and 50 chats at once to the 1-second model (wall time). Every
run checks that every message was answered once. `--cores` pins the bot processes
(`taskset -c`), the fakes and the database stay where the system puts them.
Prints ranges over the runs as a Markdown table, with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.telegram_bench import (
    AGENTDECK,
    PYTHON,
    TOKEN,
    Fake,
    free_port,
    percentile,
    process,
    wait_for_port,
)
from tests.support.network import PG_URL, admin_sql

CHATS = 50
USERS = [2000 + n for n in range(CHATS)]
BURST = 1000
ONE_BY_ONE = 200
WEBHOOK_CONNECTIONS = 40  # Telegram's default `max_connections`
EN_DASH = "\u2013"
SETUPS = ("telegram-1", "telegram-2", "slack-1", "slack-2")


@dataclass(frozen=True, slots=True)
class Figures:
    """One run of one set-up."""

    rate: float  # messages answered per second, 1,000 from 50 chats
    p50: float  # seconds, one at a time
    p95: float
    slow: float  # seconds until 50 chats were answered by the 1-second model


@dataclass(frozen=True, slots=True)
class How:
    """How the bot processes run: pinned to cores (`taskset -c`), from another checkout."""

    cores: str = ""
    code: str = ""  # a checkout's path, first on PYTHONPATH; empty: this one
    burst: int = BURST  # messages queued at once
    one_by_one: int = ONE_BY_ONE  # messages one at a time


@dataclass(frozen=True, slots=True)
class Fakes:
    telegram: Fake
    llm_url: str
    slow_url: str


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    name = f"agentdeck_team_{uuid.uuid4().hex[:12]}"
    asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def deck_toml(database: str, fakes: Fakes, transport: str) -> str:
    prefix = "telegram" if "[telegram]" in transport else "slack"
    users = "".join(
        f'[[users]]\nid = "{prefix}:{_user(prefix, u)}"\nrole = "operator"\n' for u in USERS
    )
    return f"""
[deck]
default_agent = "llm"
rate_limit_per_minute = 0
database_url = "{database}"
[llm]
base_url = "{fakes.llm_url}"
api_key = "env:BENCH_OPENAI_KEY"
max_retries = 0
[llm.providers.slow]
base_url = "{fakes.slow_url}"
api_key = "env:BENCH_OPENAI_KEY"
{users}
[[agents]]
name = "llm"
kind = "llm"
model = "fake"
[[agents]]
name = "slow"
kind = "llm"
model = "fake"
provider = "slow"
{transport}
"""


def _user(prefix: str, user: int) -> str:
    return f"U{user}" if prefix == "slack" else str(user)


def telegram_section(fakes: Fakes, hook: str, port: int) -> str:
    return f"""
[telegram]
token = "env:TG_TOKEN"
base_url = "{fakes.telegram.base_url}"
messages_per_second = 0
group_messages_per_minute = 0
mode = "webhook"
webhook_url = "{hook}/hook"
listen = "127.0.0.1"
port = {port}
path = "/hook"
"""


def slack_section(api_url: str, port: int) -> str:
    return f'\n[slack]\nmode = "http"\nport = {port}\nbase_url = "{api_url}"\n'


@contextlib.contextmanager
def bots(
    tmp: Path, sections: list[tuple[str, int]], database: str, fakes: Fakes, how: How
) -> Iterator[None]:
    """`agentdeck run` per section, one after the other (two migrating a new database at
    once would race), each until it listens on its port."""
    env = {
        "TG_TOKEN": TOKEN,
        "BENCH_OPENAI_KEY": "sk-bench",
        **_slack_env(),
        "PYTHONDONTWRITEBYTECODE": "",
        **({"PYTHONPATH": how.code} if how.code else {}),
    }
    pin = ["taskset", "-c", how.cores] if how.cores else []
    with contextlib.ExitStack() as stack:
        for n, (section, port) in enumerate(sections):
            config = tmp / f"deck{n}.toml"
            config.write_text(deck_toml(database, fakes, section))
            data = {"AGENTDECK_DATA_DIR": str(tmp / f"data{n}")}
            argv = [*pin, AGENTDECK, "run", "--config", str(config)]
            stack.enter_context(process(*argv, env={**env, **data}))
            wait_for_port(port)
        yield


def _slack_env() -> dict[str, str]:
    from tests.fakes.slack_server import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET

    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": APP_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
    }


@contextlib.contextmanager
def balancer(backends: list[int]) -> Iterator[str]:
    port = free_port()
    ports = ",".join(map(str, backends))
    with process(PYTHON, "-m", "tests.fakes.round_robin", "--port", str(port), "--backends", ports):
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"


# -- Telegram webhook ---------------------------------------------------------------------


def telegram_run(tmp: Path, fakes: Fakes, processes: int, how: How) -> Figures:
    ports = [free_port() for _ in range(processes)]
    fake = fakes.telegram
    with fresh_database() as database, balancer(ports) as front:
        sections = [(telegram_section(fakes, front, port), port) for port in ports]
        fake.reset()
        with bots(tmp, sections, database, fakes, how):
            _warm_up(fake, processes)
            rate = _telegram_burst(fake, how.burst)
            lat = _telegram_one_by_one(fake, how.one_by_one)
            slow = _telegram_slow(fake, processes)
    return Figures(rate, statistics.median(lat), percentile(lat, 0.95), slow)


def _warm_up(fake: Fake, processes: int, agent: str = "") -> None:
    """A message per process answered first: the first model call imports the SDK."""
    fake.reset()
    prefix = f"@{agent} " if agent else ""
    messages = [
        {"user": USERS[-1 - n], "text": f"{prefix}warm-up {n}"} for n in range(2 * processes)
    ]
    fake.enqueue(messages)
    fake.wait(len(messages), methods="sendMessage,editMessageText", needle="warm-up")
    fake.reset()


def _answered_once(fake: Fake, count: int) -> None:
    """As many answers as messages, a while after the last: none lost, none sent twice."""
    time.sleep(0.3)  # an answer sent twice would have arrived by now
    calls = fake.timings(methods="sendMessage")["calls"]
    if len(calls) != count:
        raise RuntimeError(f"{len(calls)} answers to {count} messages")


def _telegram_burst(fake: Fake, total: int) -> float:
    messages = [{"user": USERS[n % CHATS], "text": f"m{n}"} for n in range(total)]
    fake.enqueue(messages)
    fake.wait(total)
    _answered_once(fake, total)
    timings = fake.timings()
    first = min(timings["enqueued"].values())
    last = max(call["at"] for call in timings["calls"])
    fake.reset()
    return total / (last - first)


def _telegram_one_by_one(fake: Fake, count: int) -> list[float]:
    for n in range(count):
        fake.enqueue([{"user": USERS[n % CHATS], "text": f"q{n}"}])
        fake.wait(n + 1)
    _answered_once(fake, count)
    timings = fake.timings()
    enqueued = sorted(timings["enqueued"].values())
    arrived = sorted(call["at"] for call in timings["calls"])
    fake.reset()
    return [a - e for e, a in zip(enqueued, arrived, strict=True)]


def _telegram_slow(fake: Fake, processes: int) -> float:
    _warm_up(fake, processes, agent="slow")
    fake.enqueue([{"user": user, "text": f"@slow slow {user}"} for user in USERS])
    needle = "echo: slow"
    fake.wait(CHATS, methods="sendMessage,editMessageText", needle=needle)
    timings = fake.timings(methods="sendMessage,editMessageText", needle=needle)
    fake.reset()
    return float(max(c["at"] for c in timings["calls"]) - min(timings["enqueued"].values()))


# -- Slack HTTP (Events API) --------------------------------------------------------------


def slack_run(tmp: Path, fakes: Fakes, processes: int, how: How) -> Figures:
    from bench.slack_events import slack_load

    ports = [free_port() for _ in range(processes)]
    with slack_load() as (load, run), fresh_database() as database, balancer(ports) as front:
        sections = [(slack_section(load.fake.api_url, port), port) for port in ports]
        with bots(tmp, sections, database, fakes, how):
            url = f"{front}/slack/events"
            run(load.warm_up(url, 2 * processes))
            rate = run(load.burst(url, how.burst))
            lat = run(load.one_by_one(url, how.one_by_one))
            run(load.warm_up(url, 2 * processes, agent="slow"))
            slow = run(load.slow(url))
    return Figures(rate, statistics.median(lat), percentile(lat, 0.95), slow)


# -- the table ------------------------------------------------------------------------------


def spread(values: list[float], scale: float = 1.0, digits: int = 0) -> str:
    """A range as the README writes it (an en dash between); one number when both ends agree."""
    low, high = (f"{v * scale:.{digits}f}" for v in (min(values), max(values)))
    return low if low == high else f"{low}{EN_DASH}{high}"


def row(setup: str, runs: list[Figures]) -> str:
    cells = [
        setup,
        spread([r.rate for r in runs]) + " msg/s",
        spread([r.p50 for r in runs], 1000, 1)
        + " / "
        + spread([r.p95 for r in runs], 1000, 1)
        + " ms",
        spread([r.slow for r in runs], digits=2) + " s",
    ]
    return "| " + " | ".join(cells) + " |"


def variants(options: argparse.Namespace) -> list[tuple[str, How]]:
    """Each set-up is measured this many ways in every run, interleaved."""
    pinnings = options.cores.split("/") if options.cores else [""]
    codes = [("", "")] + ([(" (base)", options.base)] if options.base else [])
    return [
        (
            label + (f" on cores {cores}" if cores else ""),
            How(cores, code, options.burst, options.one_by_one),
        )
        for cores in pinnings
        for label, code in codes
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--setups", default=",".join(SETUPS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--cores", default="", help="taskset -c for the bot processes; '0/0,1': each way"
    )
    parser.add_argument("--base", default="", help="also run the bots from this checkout")
    parser.add_argument("--burst", type=int, default=BURST, help="messages queued at once")
    parser.add_argument("--one-by-one", type=int, default=ONE_BY_ONE, help="one at a time")
    options = parser.parse_args()
    chosen = options.setups.split(",")
    if unknown := [s for s in chosen if s not in SETUPS]:
        print(f"unknown set-up(s) {unknown}: choose from {', '.join(SETUPS)}", file=sys.stderr)
        return 2
    load_before = os.getloadavg()
    ways = variants(options)
    results: dict[str, list[Figures]] = {s + label: [] for s in chosen for label, _ in ways}
    loads: list[float] = []
    with fakes_running() as fakes:
        for run in range(options.runs):  # interleaved: each set-up, each way, in turn
            for setup in chosen:
                for label, how in ways:
                    figures = measure(setup, fakes, how)
                    results[setup + label].append(figures)
                    loads.append(os.getloadavg()[0])
                    print(
                        f"run {run + 1} {setup}{label}: {figures} load {loads[-1]:.2f}",
                        file=sys.stderr,
                        flush=True,
                    )
    load_after = os.getloadavg()
    print(
        f"\n{time.strftime('%Y-%m-%d %H:%M')} · {platform.machine()} · {os.cpu_count()} cores · "
        f"Python {platform.python_version()} · {options.runs} runs · load average "
        f"{load_before[0]:.2f} → {load_after[0]:.2f} "
        f"(between runs {min(loads):.2f} to {max(loads):.2f})\n"
    )
    print(
        "| set-up (PostgreSQL, llm agent) | 1,000 msgs / 50 chats | one at a time p50 / p95 "
        "| 50 chats, 1 s model |\n|---|---|---|---|"
    )
    for setup, runs in results.items():
        print(row(setup, runs))
    return 0


def measure(setup: str, fakes: Fakes, how: How) -> Figures:
    transport, count = setup.split("-")
    run = telegram_run if transport == "telegram" else slack_run
    with tempfile.TemporaryDirectory(prefix=f"team-{setup}-") as tmp:
        return run(Path(tmp), fakes, int(count), how)


@contextlib.contextmanager
def fakes_running() -> Iterator[Fakes]:
    tg_port, ai_port, slow_port = free_port(), free_port(), free_port()
    telegram = ["--port", str(tg_port), "--connection-per-update"]
    telegram += ["--webhook-connections", str(WEBHOOK_CONNECTIONS)]
    slow = ["--port", str(slow_port), "--delay", "1"]
    with (
        process(PYTHON, "-m", "tests.fakes.telegram_server", *telegram),
        process(PYTHON, "-m", "tests.fakes.openai_server", "--port", str(ai_port)),
        process(PYTHON, "-m", "tests.fakes.openai_server", *slow),
    ):
        for port in (tg_port, ai_port, slow_port):
            wait_for_port(port)
        yield Fakes(
            Fake(tg_port), f"http://127.0.0.1:{ai_port}/v1", f"http://127.0.0.1:{slow_port}/v1"
        )


if __name__ == "__main__":
    sys.exit(main())
