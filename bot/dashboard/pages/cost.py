"""Cost: money and tokens per agent and day, as a chart and a table."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.config import CurrentConfig
from bot.dashboard.auth import Viewer
from bot.dashboard.chart import NARROW, WIDE, cost_chart, legend
from bot.dashboard.web import page, render
from bot.runs.runner import Runner
from storage.clock import Clock
from storage.costs import DaySpend, spend_by_day
from storage.db import Database

SPANS = (7, 14, 30, 90)


@dataclass(frozen=True, slots=True)
class Parts:
    """What the cost page (and the overview's spend today) uses."""

    config: CurrentConfig
    clock: Clock
    runner: Runner
    db: Database


PARTS = web.AppKey("cost", Parts)


@dataclass(frozen=True, slots=True)
class AgentTotal:
    agent: str
    runs: int
    tokens: int
    cost: float


@dataclass(frozen=True, slots=True)
class SpendSpan:
    """Spend over a span of local days, newest day first."""

    first: date
    days: int
    rows: list[DaySpend]

    @property
    def cost(self) -> float:
        return sum(row.cost for row in self.rows)

    @property
    def tokens(self) -> int:
        return sum(row.tokens for row in self.rows)

    def per_agent(self) -> list[AgentTotal]:
        sums: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])
        for row in self.rows:
            sums[row.agent][0] += row.runs
            sums[row.agent][1] += row.tokens
            sums[row.agent][2] += row.cost
        ranked = sorted(sums.items(), key=lambda item: (-item[1][2], item[0]))
        return [AgentTotal(a, int(r), int(t), c) for a, (r, t, c) in ranked]


@page()
async def cost(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    parts = request.app[PARTS]
    raw = request.query.get("days", "")
    days = _days(raw)
    problems = [] if days or not raw else [f"days: one of {', '.join(map(str, SPANS))}"]
    days = days or SPANS[0]
    spend = await spend_over(parts, days)
    return render(
        request,
        "cost.html",
        viewer,
        status=400 if problems else 200,
        problems=problems,
        spend=spend,
        spans=SPANS,
        chart=cost_chart(spend.rows, first=spend.first, days=days, width=WIDE),
        narrow_chart=cost_chart(spend.rows, first=spend.first, days=days, width=NARROW),
        legend=legend(spend.rows),
        zone=parts.config().deck.timezone,
    )


async def spend_over(parts: Parts, days: int) -> SpendSpan:
    zone = ZoneInfo(parts.config().deck.timezone)
    today = parts.clock.now().astimezone(zone).date()
    first = today - timedelta(days=days - 1)
    await parts.runner.flush()
    rows = await spend_by_day(
        parts.db, since=datetime.combine(first, time(), tzinfo=zone), zone=zone
    )
    return SpendSpan(first, days, rows)


async def today_spend(parts: Parts) -> SpendSpan:
    return await spend_over(parts, 1)


def _days(raw: str) -> int:
    """The span asked for, or 0 when it is not one of `SPANS`."""
    return next((n for n in SPANS if raw == str(n)), 0)
