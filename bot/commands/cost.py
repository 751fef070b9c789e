"""/cost: what the agents spent, per agent, today and over the last 7 days."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.commands import command
from bot.commands.context import CommandContext
from bot.config import Role
from bot.text import Piece, bold
from storage.costs import DaySpend, spend_by_day

DAYS = 7


@command("cost", role=Role.VIEWER, help="what agents cost, today and over 7 days", usage="[agent]")
async def cost(ctx: CommandContext) -> None:
    deck = ctx.deck
    zone = ZoneInfo(deck.config.deck.timezone)
    today = deck.clock.now().astimezone(zone).date()
    since = datetime.combine(today - timedelta(days=DAYS - 1), time(), tzinfo=zone)
    await deck.runner.flush()
    rows = await spend_by_day(deck.db, since=since, zone=zone)
    wanted = ctx.args.strip().lower()
    if wanted:
        rows = [row for row in rows if row.agent == wanted]
    if not rows:
        await ctx.reply(f"No runs in the last {DAYS} days" + (f" for {wanted}." if wanted else "."))
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
