"""A scheduler alone in a process, for tests that kill it: prints each run it hands over.

    python -m tests.support.scheduler_process DATABASE_URL CLAIM_AHEAD_SECONDS LOCK_KEY [stuck-marks]

Prints `leading` once it fires, and `launched <job id> <due time>` for each run. With
`stuck-marks`, what became of a run claimed ahead is never written, as in a process
killed while that write was on its way.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from scheduler.service import Fire, Scheduler, Settings
from storage.clock import SystemClock
from storage.db import Database
from storage.jobs import Claim, JobStore
from storage.locks import AdvisoryLock


class PrintingHooks:
    def launch(self, fire: Fire) -> asyncio.Future[Any]:
        print(f"launched {fire.job.id} {fire.claim.scheduled_for.isoformat()}", flush=True)
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def skipped(self, fire: Fire) -> None:
        print(f"skipped {fire.job.id}", flush=True)

    def alert(self, text: str) -> None:
        print(f"alert {text}", flush=True)


class StuckMarks(JobStore):
    async def settle(self, claims: Sequence[Claim], holder: str) -> list[Claim]:
        for claim in claims:
            print(f"marking {claim.job_id} {claim.scheduled_for.isoformat()}", flush=True)
        await asyncio.Event().wait()  # until killed
        return []


def scheduler(
    db: Database, hooks: Any, claim_ahead: float, lock_key: int, store: type[JobStore] = JobStore
) -> Scheduler:
    settings = Settings(
        heartbeat_seconds=30,
        sync_seconds=0.2,
        takeover_seconds=0.2,
        claim_ahead=timedelta(seconds=claim_ahead),
    )
    return Scheduler(
        store=store(db=db, clock=SystemClock()),
        lock=AdvisoryLock(db, lock_key),
        hooks=hooks,
        clock=SystemClock(),
        settings=settings,
    )


async def main(url: str, claim_ahead: float, lock_key: int, store: type[JobStore]) -> None:
    hooks = PrintingHooks()
    db = Database(url)
    async with db, scheduler(db, hooks, claim_ahead, lock_key, store) as service:
        await service.ready.wait()
        print("leading", flush=True)
        await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    store = StuckMarks if sys.argv[4:] == ["stuck-marks"] else JobStore
    asyncio.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), store))
