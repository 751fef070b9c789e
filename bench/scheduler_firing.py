"""10,000 persisted jobs: start-up time, and firing lateness with 1,000 due at one second.

    .venv/bin/python -m bench.scheduler_firing

Lateness is measured from a run's due time to the moment the scheduler hands the
claimed run to the bot (after APScheduler noticed it and the claim was committed).
"""

from __future__ import annotations

import asyncio
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
    busy = [job(f"b{i:05}", "3600", due - hour, next_run_at=due) for i in range(AT_ONCE)]
    db = await database_with(quiet + busy)
    hooks = Recorder(expected=AT_ONCE)
    meter = StallMeter()
    began = time.perf_counter()
    async with scheduler(db, hooks) as service:
        await service.ready.wait()
        startup = time.perf_counter() - began
        meter.start()
        await asyncio.wait_for(hooks.all_in.wait(), LEAD_SECONDS + 30)
        stall = await meter.stop()
    await db.__aexit__(None, None, None)
    print(f"{TOTAL:,} persisted jobs: start-up {startup * 1000:.0f} ms (to firing)")
    print(f"{AT_ONCE:,} jobs due at the same second: lateness {describe_ms(hooks.lateness)}")
    print(f"longest event-loop stall while they fired: {stall * 1000:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
