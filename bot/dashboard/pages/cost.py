"""Cost: money and tokens per agent and day, as a chart and a table."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.dashboard.auth import Viewer
from bot.dashboard.chart import cost_chart, legend
from bot.dashboard.web import DECK, page, render
from bot.deck import Deck
from storage.costs import DaySpend, spend_by_day

SPANS = (7, 14, 30, 90)


@dataclass(frozen=True, slots=True)
class AgentTotal:
    agent: str
    runs: int
    tokens: int
    cost: float


@dataclass(frozen=True, slots=True)
class Spend:
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
    deck = request.app[DECK]
    days = _days(request.query.get("days", ""))
    spend = await spend_over(deck, days)
    return render(
        request,
        "cost.html",
        viewer,
        spend=spend,
        spans=SPANS,
        chart=cost_chart(spend.rows, first=spend.first, days=days),
        legend=legend(spend.rows),
        zone=deck.config.deck.timezone,
    )


async def spend_over(deck: Deck, days: int) -> Spend:
    zone = ZoneInfo(deck.config.deck.timezone)
    today = deck.clock.now().astimezone(zone).date()
    first = today - timedelta(days=days - 1)
    await deck.runner.flush()
    rows = await spend_by_day(
        deck.db, since=datetime.combine(first, time(), tzinfo=zone), zone=zone
    )
    return Spend(first, days, rows)


async def today_spend(deck: Deck) -> Spend:
    return await spend_over(deck, 1)


def _days(raw: str) -> int:
    return int(raw) if raw.isdigit() and int(raw) in SPANS else SPANS[0]
