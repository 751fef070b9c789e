"""10,000 persisted jobs: start-up time, and firing lateness with 1,000 due at one second.

    .venv/bin/python -m bench.scheduler_firing [--distinct]

Lateness is measured from a run's intended fire time to the moment the run starts:
the scheduler hands the claimed run to the bot (the run was claimed, committed, a
second ahead and held until its due instant; then its hand-over is written, one
UPDATE per 500 runs, and it starts once that commits). By default the 1,000 jobs
share one trigger (as cron jobs at 09:00 do); with `--distinct` each has its own
(intervals created half a millisecond apart, all due within the same second), so none
share an APScheduler timer.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import timedelta

from bench.scheduler_common import (
    Recorder,
    StallMeter,
    database_with,
    describe_ms,
    job,
    now,
    scheduler,
)

TOTAL = 10_000
AT_ONCE = 1_000
LEAD_SECONDS = 15  # start-up must be over before they fall due


async def main() -> None:
    start = now()
    due = (start + timedelta(seconds=LEAD_SECONDS)).replace(microsecond=0)
    hour = timedelta(hours=1)
    # As after a restart: each job knows its next run (the scheduler wrote it).
    quiet = [
        job(f"q{i:05}", "3600", start, next_run_at=start + hour) for i in range(TOTAL - AT_ONCE)
    ]
    # Hourly jobs made an hour before `due`: their first run falls on that second.
    step = timedelta(microseconds=500 if "--distinct" in sys.argv else 0)
    busy = [
        job(f"b{i:05}", "3600", due - hour + i * step, next_run_at=due + i * step)
        for i in range(AT_ONCE)
    ]
    db = await database_with(quiet + busy)
    del quiet, busy  # a restarted process does not hold these: only what it loads
    hooks = Recorder(expected=AT_ONCE)
    meter = StallMeter()
    began = time.perf_counter()
    async with scheduler(db, hooks) as service:
        await service.ready.wait()
        startup = time.perf_counter() - began
        engine = service.engine()
        timers = engine.timers if engine is not None else 0
        meter.start()
        await asyncio.wait_for(hooks.all_in.wait(), LEAD_SECONDS + 30)
        stall = await meter.stop()
    await db.__aexit__(None, None, None)
    print(f"{TOTAL:,} persisted jobs: start-up {startup * 1000:.0f} ms (to firing)")
    print(f"APScheduler timers at start-up: {timers:,}")
    print(f"{AT_ONCE:,} jobs due at the same second: lateness {describe_ms(hooks.lateness)}")
    print(f"longest event-loop stall while they fired: {stall * 1000:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
