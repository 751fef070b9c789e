"""The chaos experiment: kill -9 at random moments of a stream of messages, then count.

Real `agentdeck run` processes take messages from the fake Telegram Bot API; a command
agent appends each message's tag to a file before it answers `done <tag>`. Afterwards
every message must have run at most once, and have been answered once or reported once
as cut short with a Run again button; nothing may be left unhandled in the inbox, or
`running` once the bot has stopped. Two set-ups: SQLite with polling, and PostgreSQL
with two webhook processes behind a round-robin balancer, one of them killed each time.

The other experiments of issue #15 (a PostgreSQL restart, Telegram API errors, SIGTERM
during a job) are in `chaos_faults` and `chaos_jobs` beside it; each ends in a `Row`.
Used by `tests/test_chaos.py` (small) and `bench/chaos.py` (large).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from storage.db import Database, sqlite_url
from storage.models import InboxItem, Run, RunState
from tests.fakes.round_robin import RoundRobin
from tests.fakes.telegram_server import FakeTelegram
from tests.support.network import free_port
from tests.support.telegram import ADMIN
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
FIRST_USER = 2001  # the counted chats; ADMIN's chat gets the restart notes
ANSWER = re.compile(r"done (m\d{5})")
REPORTED = re.compile(r"interrupted by a restart.*?\((m\d{5})\)", re.DOTALL)
STOP_SECONDS = 60.0
START_SECONDS = 60.0
STARTED = ("agentdeck started.", "agentdeck is back.")  # the admin's note at each start

SCRIPT = """#!/bin/sh
echo "$1" >> "{count}"
sleep {work}
echo "done $1"
"""


# A command agent that appends its input to {count}, writes its pid to {pid}, and the
# first time (no {mark} yet) sleeps a minute before it answers: a run to kill mid-way.
SLEEPY = """#!/bin/sh
echo "$1" >> "{count}"
echo $$ > "{pid}"
if [ ! -e "{mark}" ]; then touch "{mark}"; sleep 60; fi
echo "done $1"
"""


@dataclass(frozen=True, slots=True)
class Plan:
    """How many messages, how fast, how many kills, how long each run works."""

    messages: int = 80
    kills: int = 3
    chats: int = 4
    gap: float = 0.03  # seconds between two messages
    work: float = 0.1  # seconds each command runs
    jitter: float = 0.15  # a kill comes up to this long after its message
    seed: int = 1

    def kill_points(self) -> set[int]:
        """After which messages a kill comes (not among the first and last few)."""
        rng = random.Random(self.seed)  # noqa: S311 (a repeatable experiment)
        edge = min(5, self.messages // 4)
        return set(rng.sample(range(edge, self.messages - edge), self.kills))


@dataclass(frozen=True, slots=True)
class Row:
    """One experiment, counted: a line of the bench's table, and what a test asserts."""

    setup: str
    messages: int  # messages sent (or job runs, for the job experiment)
    faults: int  # kills, database restarts, API errors answered, SIGTERMs
    executions: int  # lines the counting command appended
    duplicates: int  # messages (due times) executed more than once
    lost: int  # messages neither answered nor reported (due times never made up for)
    reported: int  # runs reported interrupted, with a Run again button
    also_answered: int  # of those, answered too (cut between the answer and its record)
    recovery: tuple[float, ...]  # seconds from each fault to working again
    problems: tuple[str, ...]  # every broken promise, described


@dataclass
class Tally:
    """What happened to every message."""

    setup: str
    messages: int
    kills: int = 0
    executions: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)
    reports: Counter[str] = field(default_factory=Counter)
    recovery: list[float] = field(default_factory=list)  # kill -> taking updates again
    unhandled: int = -1  # inbox rows not handled, once the bot stopped
    running: int = -1  # runs still `running`, once the bot stopped
    more: list[str] = field(default_factory=list)  # broken promises the experiment adds

    @property
    def tags(self) -> list[str]:
        return [tag(n) for n in range(self.messages)]

    @property
    def duplicates(self) -> list[str]:
        return [t for t, n in self.executions.items() if n > 1]

    @property
    def lost(self) -> list[str]:
        return [t for t in self.tags if not self.answers[t] and not self.reports[t]]

    @property
    def told_twice(self) -> list[str]:
        return [t for t in self.tags if self.answers[t] > 1 or self.reports[t] > 1]

    @property
    def answered_and_reported(self) -> list[str]:
        """Answered, then reported as cut short: killed between the answer and its record."""
        return [t for t in self.tags if self.answers[t] and self.reports[t]]

    @property
    def answered_unexecuted(self) -> list[str]:
        return [t for t in self.tags if self.answers[t] and not self.executions[t]]

    def problems(self) -> list[str]:
        """Every broken promise, described; empty when all held."""
        checks = {
            "executed more than once": self.duplicates,
            "neither answered nor reported": self.lost,
            "answered or reported more than once": self.told_twice,
            "answered without running": self.answered_unexecuted,
        }
        found = [f"{what}: {tags[:10]}" for what, tags in checks.items() if tags]
        if self.unhandled:
            found.append(f"{self.unhandled} inbox row(s) left unhandled")
        if self.running:
            found.append(f"{self.running} run(s) left running")
        return found + self.more

    def row(self) -> Row:
        return Row(
            setup=self.setup,
            messages=self.messages,
            faults=self.kills,
            executions=sum(self.executions.values()),
            duplicates=len(self.duplicates),
            lost=len(self.lost),
            reported=sum(self.reports.values()),
            also_answered=len(self.answered_and_reported),
            recovery=tuple(self.recovery),
            problems=tuple(self.problems()),
        )


def tag(n: int) -> str:
    return f"m{n:05d}"


def read_outcomes(fake: FakeTelegram, tally: Tally) -> None:
    """Answers and Run again reports, from the messages as they now stand in the chats."""
    tally.answers.clear()
    tally.reports.clear()
    for message in fake.messages.values():
        text = message.get("text", "")
        if message["chat"]["id"] == ADMIN or "working…" in text:
            continue
        if (found := ANSWER.search(text)) and "exit 0" in text:
            tally.answers[found[1]] += 1
        elif (found := REPORTED.search(text)) and _run_again_button(message):
            tally.reports[found[1]] += 1


def _run_again_button(message: dict[str, Any]) -> bool:
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    return any(button["text"] == "Run again" for row in rows for button in row)


def read_executions(count_file: Path, tally: Tally) -> None:
    lines = count_file.read_text().split() if count_file.exists() else []
    tally.executions = Counter(lines)


class BotProcess:
    """One `agentdeck run`, started again after each kill; its stderr kept in a file."""

    def __init__(self, data_dir: Path, config: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self._config = config
        self._env = {**os.environ, **env, "AGENTDECK_DATA_DIR": str(data_dir)}
        self.process: asyncio.subprocess.Process | None = None
        data_dir.mkdir(parents=True, exist_ok=True)

    async def start(self) -> None:
        with (self.data_dir / "stderr.txt").open("ab") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                "--config",
                str(self._config),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
                env=self._env,
                cwd=ROOT,
            )

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def kill_if_running(self) -> None:
        """SIGKILL if started and still running (a test's clean-up, whatever it left)."""
        if self.process is not None and self.process.returncode is None:
            await self.kill()

    async def stop(self) -> int:
        """SIGTERM, as a service manager stops it; the exit code."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_SECONDS):
                return await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise


def write_script(tmp: Path, work: float) -> tuple[Path, Path]:
    """The counting command, and the file it counts in."""
    count = tmp / "executions.txt"
    script = tmp / "count.sh"
    script.write_text(SCRIPT.format(count=count, work=work))
    script.chmod(0o755)
    return script, count


def deck_toml(script: Path, chats: int, extra: str) -> str:
    users = "".join(
        f'[[users]]\nid = "telegram:{FIRST_USER + n}"\nrole = "operator"\n' for n in range(chats)
    )
    return f"""
[deck]
default_agent = "count"
admin_chat = "telegram:{ADMIN}"
rate_limit_per_minute = 0
{extra}
[scheduler]
enabled = false
[[users]]
id = "telegram:{ADMIN}"
role = "admin"
{users}
[[agents]]
name = "count"
kind = "command"
command = ["{script}", "{{input}}"]
timeout = 60
"""


def starts_told(fake: FakeTelegram) -> int:
    """How many starts the admin chat was told of: each is told once its start took over
    what the last process left (`bot.app.recover`)."""
    return sum(text.startswith(STARTED) for text in fake.sent_texts(ADMIN))


async def stream(
    fake: FakeTelegram,
    plan: Plan,
    kill: Callable[[], Awaitable[float]],
    tally: Tally,
    *,
    aside: bool = False,
) -> None:
    """Send the messages; after each kill point, kill (and restart) a bot process. With
    `aside` the fault runs beside the stream, which goes on meanwhile (a database
    restart under load); it is awaited before this returns."""
    points = plan.kill_points()
    rng = random.Random(plan.seed + 1)  # noqa: S311 (a repeatable experiment)
    beside: list[asyncio.Future[float]] = []
    for n in range(plan.messages):
        fake.user_says(tag(n), user=FIRST_USER + n % plan.chats)
        if n in points:
            await asyncio.sleep(rng.uniform(0, plan.jitter))
            if aside:
                beside.append(asyncio.ensure_future(kill()))
            else:
                tally.recovery.append(await kill())
            tally.kills += 1
        await asyncio.sleep(plan.gap)
    tally.recovery += await asyncio.gather(*beside)


async def settle(fake: FakeTelegram, tally: Tally, timeout: float) -> None:
    """Wait until every message was answered or reported (or the time is up)."""

    def told() -> bool:
        read_outcomes(fake, tally)
        return not tally.lost

    with contextlib.suppress(TimeoutError):  # what is missing shows in the tally
        await eventually(told, timeout, step=0.2)


async def unfinished(db: Database) -> tuple[int, int]:
    """Inbox rows not handled, and runs `running`."""
    async with db.session() as session:
        unhandled = select(func.count()).where(col(InboxItem.handled_at).is_(None))
        running = select(func.count()).where(col(Run.status) == RunState.RUNNING)
        return (
            (await session.exec(unhandled.select_from(InboxItem))).one(),
            (await session.exec(running.select_from(Run))).one(),
        )


async def leftovers(url: str, tally: Tally) -> None:
    async with Database(url) as db:
        tally.unhandled, tally.running = await unfinished(db)


async def settled(url: str, timeout: float) -> None:
    """Wait until nothing is unhandled or running (what a start takes over is done); what
    is left after `timeout` shows in the tally."""
    async with Database(url) as db:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while await unfinished(db) != (0, 0):
                    await asyncio.sleep(0.1)


# -- SQLite, polling ---------------------------------------------------------------------


async def polling(
    tmp: Path,
    plan: Plan,
    *,
    settle_seconds: float = 120.0,
    fake: FakeTelegram | None = None,
    setup: str = "polling-kill: SQLite, polling, one process",
) -> Tally:
    """One process on SQLite polling the fake Telegram; killed and restarted at each kill
    point. The fake may come prepared (faults to answer); it is stopped here."""
    fake = fake or await FakeTelegram().start()
    tally = Tally(setup, plan.messages)
    script, count = write_script(tmp, plan.work)
    config = tmp / "deck.toml"
    polling_section = f'[telegram]\ntoken = "env:TG_TOKEN"\nbase_url = "{fake.base_url}"\n'
    polling_section += "messages_per_second = 0\n"
    config.write_text(deck_toml(script, plan.chats, "") + polling_section)
    bot = BotProcess(tmp / "data", config, {"TG_TOKEN": fake.token})
    loop = asyncio.get_running_loop()

    async def polled() -> None:
        fake.first_poll_at = None
        await bot.start()
        await eventually(lambda: fake.first_poll_at is not None, START_SECONDS)

    async def kill() -> float:
        killed_at = loop.time()
        await bot.kill()
        await polled()
        return loop.time() - killed_at

    try:
        await polled()
        await stream(fake, plan, kill, tally)
        await settle(fake, tally, settle_seconds)
        await bot.stop()
        read_outcomes(fake, tally)
        read_executions(count, tally)
        await leftovers(sqlite_url(bot.data_dir), tally)
    finally:
        await bot.kill_if_running()
        await fake.stop()
    return tally


# -- PostgreSQL, two webhook processes ----------------------------------------------------


@dataclass
class Pair:
    """Two webhook processes behind the balancer, and what a fault needs to reach them."""

    fake: FakeTelegram
    bots: list[BotProcess]
    ports: list[int]
    turn: int = 0

    async def start(self, index: int) -> None:
        await self.bots[index].start()
        await _listening(self.ports[index])

    async def kill_one(self) -> float:
        """kill -9 one process (each in turn) and start it again; the seconds until it
        accepts connections again."""
        index, self.turn = self.turn % 2, self.turn + 1
        loop = asyncio.get_running_loop()
        killed_at = loop.time()
        await self.bots[index].kill()
        await self.start(index)
        return loop.time() - killed_at

    async def start_both(self) -> None:
        """One after the other (two processes migrating a new database at once would race);
        until both registered their webhook."""
        told, registered = starts_told(self.fake), len(self.fake.calls_to("setWebhook"))
        for index in range(2):
            await self.start(index)
        await eventually(
            lambda: len(self.fake.calls_to("setWebhook")) >= registered + 2, START_SECONDS
        )
        await eventually(lambda: starts_told(self.fake) >= told + 2, START_SECONDS)

    async def stop_both(self) -> None:
        for bot in self.bots:
            await bot.stop()


async def webhook_pair(
    tmp: Path,
    plan: Plan,
    pg_url: str,
    *,
    settle_seconds: float = 120.0,
    fault: Callable[[Pair], Awaitable[float]] = Pair.kill_one,
    setup: str = "webhook-kill: PostgreSQL, webhook, two processes",
    restart_after: bool = False,
    aside: bool = False,
) -> Tally:
    """Two webhook processes on one PostgreSQL database behind a round-robin balancer;
    at each kill point `fault` strikes (by default one of them, in turn, is killed and
    started again; with `aside`, the stream goes on while it strikes). With
    `restart_after`, once all is told both stop and start again (an ordinary restart)
    before counting: nothing may run or be told again then."""
    fake = await FakeTelegram(connection_per_update=True).start()
    ports = [free_port(), free_port()]
    balancer = await RoundRobin(ports).start()
    tally = Tally(setup, plan.messages)
    script, count = write_script(tmp, plan.work)
    bots = [
        _webhook_bot(
            tmp,
            name,
            port=port,
            fake=fake,
            balancer=balancer,
            script=script,
            plan=plan,
            pg_url=pg_url,
        )
        for name, port in zip("ab", ports, strict=True)
    ]
    pair = Pair(fake, bots, ports)

    async def strike() -> float:
        return await fault(pair)

    try:
        await pair.start_both()
        await stream(fake, plan, strike, tally, aside=aside)
        await settle(fake, tally, settle_seconds)
        await pair.stop_both()
        if restart_after:
            await pair.start_both()
            await settled(pg_url, START_SECONDS)
            await pair.stop_both()
        read_outcomes(fake, tally)
        read_executions(count, tally)
        await leftovers(pg_url, tally)
    finally:
        for bot in bots:
            await bot.kill_if_running()
        await balancer.stop()
        await fake.stop()
    return tally


def _webhook_bot(
    tmp: Path,
    name: str,
    *,
    port: int,
    fake: FakeTelegram,
    balancer: RoundRobin,
    script: Path,
    plan: Plan,
    pg_url: str,
) -> BotProcess:
    deck = (
        f'database_url = "{pg_url}"\nprocess_heartbeat_seconds = 0.3\nprocess_stale_seconds = 2\n'
    )
    webhook = f"""
[telegram]
token = "env:TG_TOKEN"
base_url = "{fake.base_url}"
messages_per_second = 0
mode = "webhook"
webhook_url = "{balancer.url}/hook"
listen = "127.0.0.1"
port = {port}
path = "/hook"
"""
    config = tmp / f"{name}.toml"
    config.write_text(deck_toml(script, plan.chats, deck) + webhook)
    return BotProcess(tmp / name, config, {"TG_TOKEN": fake.token})


async def _listening(port: int) -> None:
    async def accepts() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        return True

    await eventually(accepts, START_SECONDS)
