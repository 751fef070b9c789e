"""Chaos: faults under load, at scale; count what ran and what was told.

The experiments of `tests/test_chaos.py`, larger, each a set-up (`--setups`):

- `polling-kill`: 1,000 messages, 10 random kill -9s, SQLite, Telegram polling, one
  process killed and started again (`tests.support.chaos.polling`);
- `webhook-kill`: the same on PostgreSQL with two webhook processes behind a
  round-robin balancer, one of them killed each time (`tests.support.chaos.webhook_pair`);
- `database-restart`: two webhook processes on a throwaway PostgreSQL server
  (`tests.support.pgserver`, never the shared one), restarted under load, then an ordinary
  restart of both bot processes (`tests.support.chaos_faults.database_restart`);
- `api-errors`: the fake Telegram refuses a share of `sendMessage` calls with 500, 503
  and 429 (`tests.support.chaos_faults.api_errors`);
- `job-sigterm`: SIGTERM during a 1-second job's run, again and again
  (`tests.support.chaos_jobs.job_sigterm`).

A command agent appends each input to a file, so executions are counted, not inferred.

    .venv/bin/python -m bench.chaos [--messages 1000] [--kills 10] [--setups a,b,...]

Prints a Markdown table for README.md, with the load average. "Recovery" is, for a
kill, until the restarted process takes updates again; for a database restart, until
a bot process stores an update again; for a refused send, until the same text went
out; for a SIGTERM, until the next process reported its catch-up run. `webhook-kill`
needs a server at `AGENTDECK_TEST_PG`'s address (as the tests do); a database of its
own is created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from tests.support import chaos, chaos_faults, chaos_jobs, pgserver
from tests.support.chaos import Plan, Row

PG_URL = os.environ.get("AGENTDECK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
SETUPS = ("polling-kill", "webhook-kill", "database-restart", "api-errors", "job-sigterm")
COLUMNS = (
    "set-up",
    "messages",
    "kills / faults",
    "executions",
    "duplicates",
    "lost",
    "interrupted and reported",
    "of which answered too",
    "recovery p50 / max",
    "wall time",
)


def cells(result: Row, seconds: float) -> list[str]:
    recovery = sorted(result.recovery)
    median = statistics.median(recovery) if recovery else 0.0
    top = recovery[-1] if recovery else 0.0
    return [
        result.setup,
        f"{result.messages:,}",
        str(result.faults),
        f"{result.executions:,}",
        str(result.duplicates),
        str(result.lost),
        str(result.reported),
        str(result.also_answered),
        f"{median:.2f} s / {top:.2f} s",
        f"{seconds:.0f} s",
    ]


def table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


async def _admin_sql(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_URL.replace("postgresql://", "postgres://"))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def webhook_kill(tmp: Path, args: argparse.Namespace) -> Row:
    name = f"agentdeck_chaos_{uuid.uuid4().hex[:12]}"
    await _admin_sql(f'CREATE DATABASE "{name}"')
    try:
        url = PG_URL.rsplit("/", 1)[0] + "/" + name
        tally = await chaos.webhook_pair(tmp, plan(args), url, settle_seconds=settle(args))
    finally:
        await _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return tally.row()


async def database_restart(tmp: Path, args: argparse.Namespace) -> Row:
    reason = pgserver.missing()
    if reason is not None:
        raise SystemExit(f"database-restart: a throwaway PostgreSQL cannot start: {reason}")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    restarts = Plan(messages=args.messages, kills=args.restarts, chats=args.chats, seed=args.seed)
    with pgserver.pg_server(port) as server:
        tally = await chaos_faults.database_restart(
            tmp, restarts, server, mode=args.restart_mode, settle_seconds=settle(args)
        )
    return tally.row()


async def polling_kill(tmp: Path, args: argparse.Namespace) -> Row:
    return (await chaos.polling(tmp, plan(args), settle_seconds=settle(args))).row()


async def api_errors(tmp: Path, args: argparse.Namespace) -> Row:
    tally = await chaos_faults.api_errors(
        tmp, plan(args), share=args.share, settle_seconds=settle(args)
    )
    return tally.row()


async def job_sigterm(tmp: Path, args: argparse.Namespace) -> Row:
    return await chaos_jobs.job_sigterm(tmp, stops=args.stops)


RUNS: dict[str, Callable[[Path, argparse.Namespace], Awaitable[Row]]] = {
    "polling-kill": polling_kill,
    "webhook-kill": webhook_kill,
    "database-restart": database_restart,
    "api-errors": api_errors,
    "job-sigterm": job_sigterm,
}


def plan(args: argparse.Namespace) -> Plan:
    return Plan(messages=args.messages, kills=args.kills, chats=args.chats, seed=args.seed)


def settle(args: argparse.Namespace) -> float:
    return 120.0 + float(args.messages) * 0.2


async def main(args: argparse.Namespace) -> int:
    chosen = args.setups.split(",")
    if unknown := [s for s in chosen if s not in RUNS]:
        print(f"unknown set-up(s) {unknown}: choose from {', '.join(SETUPS)}", file=sys.stderr)
        return 2
    rows: list[list[str]] = []
    broken: list[str] = []
    for setup in chosen:
        with tempfile.TemporaryDirectory(prefix=f"chaos-{setup}-") as tmp:
            began = time.monotonic()
            result = await RUNS[setup](Path(tmp), args)
            rows.append(cells(result, time.monotonic() - began))
            broken += [f"{setup}: {problem}" for problem in result.problems]
            print(f"{setup}: done {rows[-1]}", file=sys.stderr, flush=True)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load}, {os.cpu_count()} cores\n")
    print(table(rows))
    for problem in broken:
        print(f"BROKEN {problem}")
    return 1 if broken else 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=10, help="kill -9s (the kill set-ups)")
    parser.add_argument("--restarts", type=int, default=3, help="database restarts")
    parser.add_argument("--restart-mode", choices=("fast", "immediate"), default="fast")
    parser.add_argument("--share", type=float, default=0.1, help="sends refused (api-errors)")
    parser.add_argument("--stops", type=int, default=10, help="SIGTERMs (job-sigterm)")
    parser.add_argument("--chats", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--setups", default=",".join(SETUPS))
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
