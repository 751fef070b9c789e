"""What runs cost, summed per agent and local day (for /cost)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from storage.db import Database
from storage.models import Run


@dataclass(frozen=True, slots=True)
class DaySpend:
    day: date
    agent: str
    runs: int
    tokens: int
    cost: float


async def spend_by_day(db: Database, *, since: datetime, zone: ZoneInfo) -> list[DaySpend]:
    """Runs started at or after `since`, summed per agent and day in `zone`, newest day first."""
    tokens = col(Run.tokens_in) + col(Run.tokens_out)
    query = select(Run.agent, Run.started_at, tokens, Run.cost).where(col(Run.started_at) >= since)
    async with db.session() as session:
        rows = (await session.exec(query)).all()
    sums: dict[tuple[date, str], list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for agent, started, used, cost in rows:
        bucket = sums[(started.astimezone(zone).date(), agent)]
        bucket[0] += 1
        bucket[1] += used or 0
        bucket[2] += cost
    return [
        DaySpend(day, agent, int(runs), int(tokens), cost)
        for (day, agent), (runs, tokens, cost) in sorted(
            sums.items(), key=lambda i: (-i[0][0].toordinal(), i[0][1])
        )
    ]
