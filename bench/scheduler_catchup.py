"""10,000 jobs overdue after a downtime: the longest event-loop stall while caught up.

    .venv/bin/python -m bench.scheduler_catchup

Every job ran last an hour ago and runs every 5 minutes: each missed 12 runs, which
the new leader coalesces into one run per job (10,000 claims, 10,000 runs handed over).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from bench.scheduler_common import Recorder, StallMeter, database_with, job, now, scheduler

TOTAL = 10_000


async def main() -> None:
    start = now()
    made = start - timedelta(hours=2, seconds=30)
    jobs = [
        job(f"o{i:05}", "300", made, last_run_at=start - timedelta(hours=1, seconds=30))
        for i in range(TOTAL)
    ]
    db = await database_with(jobs)
    del jobs  # a restarted process does not hold these: only what it loads
    hooks = Recorder(expected=TOTAL)
    meter = StallMeter()
    meter.start()
    began = time.perf_counter()
    async with scheduler(db, hooks) as service:
        await service.ready.wait()
        await asyncio.wait_for(hooks.all_in.wait(), 120)
        took = time.perf_counter() - began
    stall = await meter.stop()
    await db.__aexit__(None, None, None)
    print(f"{TOTAL:,} overdue jobs caught up (one coalesced run each) in {took * 1000:.0f} ms")
    print(f"longest event-loop stall meanwhile: {stall * 1000:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
