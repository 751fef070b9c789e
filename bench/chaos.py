"""Chaos: kill -9 at random moments of a stream of messages, at scale; count what happened.

The experiment of `tests/test_chaos.py` (`tests.support.chaos`), larger: by default 1,000
messages and 10 kills, on SQLite with Telegram polling (one process, killed and started
again) and on PostgreSQL with two webhook processes behind a round-robin balancer (one
of them killed each time, in turn). A command agent appends each message's tag to a
file before it answers, so executions are counted, not inferred.

    .venv/bin/python -m bench.chaos [--messages 1000] [--kills 10] [--setups sqlite,postgresql]

Prints a Markdown table for README.md. "Recovery" runs from the kill to the restarted
process taking updates again (its first `getUpdates`, or its webhook port accepting).
PostgreSQL needs a server at `AGENTDECK_TEST_PG`'s address (as the tests do); a
database of its own is created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.support import chaos
from tests.support.chaos import Plan, Tally

PG_URL = os.environ.get("AGENTDECK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
COLUMNS = (
    "set-up",
    "messages",
    "kills",
    "executions",
    "duplicates",
    "lost",
    "interrupted and reported",
    "of which answered too",
    "recovery p50 / max",
    "wall time",
)


def row(tally: Tally, seconds: float) -> list[str]:
    recovery = sorted(tally.recovery)
    median = statistics.median(recovery) if recovery else 0.0
    top = recovery[-1] if recovery else 0.0
    return [
        tally.setup,
        f"{tally.messages:,}",
        str(tally.kills),
        f"{sum(tally.executions.values()):,}",
        str(len(tally.duplicates)),
        str(len(tally.lost)),
        str(sum(tally.reports.values())),
        str(len(tally.answered_and_reported)),
        f"{median:.2f} s / {top:.2f} s",
        f"{seconds:.0f} s",
    ]


def table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


async def _admin_sql(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_URL.replace("postgresql://", "postgres://"))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def on_postgresql(tmp: Path, plan: Plan, settle: float) -> Tally:
    name = f"agentdeck_chaos_{uuid.uuid4().hex[:12]}"
    await _admin_sql(f'CREATE DATABASE "{name}"')
    try:
        url = PG_URL.rsplit("/", 1)[0] + "/" + name
        return await chaos.webhook_pair(tmp, plan, url, settle_seconds=settle)
    finally:
        await _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def main(args: argparse.Namespace) -> int:
    plan = Plan(messages=args.messages, kills=args.kills, chats=args.chats, seed=args.seed)
    settle = 120.0 + args.messages * 0.2
    rows: list[list[str]] = []
    broken: list[str] = []
    for setup in args.setups.split(","):
        with tempfile.TemporaryDirectory(prefix=f"chaos-{setup}-") as tmp:
            began = time.monotonic()
            if setup == "sqlite":
                tally = await chaos.polling(Path(tmp), plan, settle_seconds=settle)
            elif setup == "postgresql":
                tally = await on_postgresql(Path(tmp), plan, settle)
            else:
                print(f"unknown set-up {setup!r}: sqlite or postgresql", file=sys.stderr)
                return 2
            rows.append(row(tally, time.monotonic() - began))
            broken += [f"{setup}: {problem}" for problem in tally.problems()]
            print(f"{setup}: done", file=sys.stderr, flush=True)
    print(table(rows))
    for problem in broken:
        print(f"BROKEN {problem}")
    return 1 if broken else 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--chats", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--setups", default="sqlite,postgresql")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
