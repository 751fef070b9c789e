"""/audit: the newest audit events, for admins, with the chain's state."""

from __future__ import annotations

from bot.commands import command
from bot.commands.context import CommandContext
from bot.config import Role
from bot.text import Piece, bold, code

MAX_EVENTS = 50


@command("audit", role=Role.ADMIN, help="the newest audit events", usage="[n]")
async def audit(ctx: CommandContext) -> None:
    arg = ctx.args.strip()
    count = min(int(arg), MAX_EVENTS) if arg.isdigit() and int(arg) > 0 else 10
    await ctx.deck.runner.flush()
    events = await ctx.deck.audit.tail(count)
    broken = (await ctx.deck.audit.verify()).broken
    state = "intact" if broken is None else f"BROKEN at row {broken.id}"
    lines: list[Piece] = [bold(f"Audit (chain {state})"), "\n"]
    for event in events:
        detail = " ".join(f"{k}={v}" for k, v in event.detail.items())[:120]
        when = f"{event.at:%m-%d %H:%M:%S}"
        lines += [
            code(when),
            f" {event.actor} {event.action} {event.subject} {detail}".rstrip(),
            "\n",
        ]
    await ctx.reply(*lines)
