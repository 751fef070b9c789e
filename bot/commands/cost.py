"""/cost: what the agents spent, per agent, today and over the last 7 days."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.commands import command
from bot.config import CurrentConfig, Role
from bot.intake.command_spec import CommandContext
from bot.runs.runner import Runner
from bot.text import Piece, bold
from storage.clock import Clock
from storage.costs import DaySpend, spend_by_day
from storage.db import Database

DAYS = 7


class CostCommands:
    """What the agents spent."""

    def __init__(
        self,
        *,
        config: CurrentConfig,
        clock: Clock,
        runner: Runner,
        db: Database,
    ) -> None:
        self._config = config
        self._clock = clock
        self._runner = runner
        self._db = db

    @command(
        "cost", role=Role.VIEWER, help="what agents cost, today and over 7 days", usage="[agent]"
    )
    async def cost(self, ctx: CommandContext) -> None:
        zone = ZoneInfo(self._config().deck.timezone)
        today = self._clock.now().astimezone(zone).date()
        since = datetime.combine(today - timedelta(days=DAYS - 1), time(), tzinfo=zone)
        await self._runner.flush()
        rows = await spend_by_day(self._db, since=since, zone=zone)
        wanted = ctx.args.strip().lower()
        if wanted:
            rows = [row for row in rows if row.agent == wanted]
        if not rows:
            await ctx.reply(
                f"No runs in the last {DAYS} days" + (f" for {wanted}." if wanted else ".")
            )
            return
        lines: list[Piece] = [bold(f"Today ({today:%Y-%m-%d}, {zone.key})"), "\n"]
        lines += _table([row for row in rows if row.day == today]) or ["nothing yet\n"]
        lines += [bold(f"Last {DAYS} days"), "\n", *_table(rows)]
        lines += [bold("By day"), "\n"]
        lines += [f"{day:%a %m-%d}  {_money(total)}\n" for day, total in _per_day(rows)]
        await ctx.reply(*lines)


def _table(rows: list[DaySpend]) -> list[Piece]:
    """One line per agent, most expensive first, then the total."""
    sums: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for row in rows:
        sums[row.agent][0] += row.runs
        sums[row.agent][1] += row.tokens
        sums[row.agent][2] += row.cost
    if not sums:
        return []
    ranked = sorted(sums.items(), key=lambda item: (-item[1][2], item[0]))
    lines: list[Piece] = [
        f"{agent}: {_money(c)} · {int(runs)} run(s) · {int(tokens):,} tok\n"
        for agent, (runs, tokens, c) in ranked
    ]
    lines.append(f"total: {_money(sum(s[2] for s in sums.values()))}\n")
    return lines


def _per_day(rows: list[DaySpend]) -> list[tuple[date, float]]:
    days: dict[date, float] = defaultdict(float)
    for row in rows:
        days[row.day] += row.cost
    return sorted(days.items(), reverse=True)


def _money(value: float) -> str:
    return f"${value:.4f}" if value < 1 else f"${value:.2f}"
