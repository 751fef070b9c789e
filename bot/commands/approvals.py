"""Commands about approvals: /approvals /approve /deny."""

from __future__ import annotations

from bot.commands import command
from bot.commands.context import CommandContext
from bot.config import Role
from bot.intake import actions
from bot.runs.cards import describe
from bot.text import Piece, bold, code
from roster.agent import Action


@command("approvals", role=Role.VIEWER, help="what waits for a decision", immediate=True)
async def approvals(ctx: CommandContext) -> None:
    pending = await ctx.deck.approvals.pending()
    if not pending:
        await ctx.reply("Nothing waits for approval.")
        return
    lines: list[Piece] = [bold("Pending approvals"), "\n"]
    for row in pending:
        action = describe(Action.from_json(row.action))
        lines += [
            code(row.id),
            f" {row.agent}: {action} (asked by {ctx.deck.access.display(row.requested_by)})\n",
        ]
    await ctx.reply(*lines)


@command("approve", role=Role.OPERATOR, help="approve a request", usage="<id>", immediate=True)
async def approve(ctx: CommandContext) -> None:
    await _decide(ctx, "approve")


@command("deny", role=Role.OPERATOR, help="deny a request", usage="<id> [reason]", immediate=True)
async def deny(ctx: CommandContext) -> None:
    await _decide(ctx, "deny")


async def _decide(ctx: CommandContext, choice: str) -> None:
    approval_id, _, reason = ctx.args.strip().partition(" ")
    if not approval_id:
        await ctx.reply(f"Usage: /{choice} <id>. /approvals lists the ids.")
        return
    await actions.decide(ctx.deck, ctx.incoming, approval_id, choice, reason.strip())
