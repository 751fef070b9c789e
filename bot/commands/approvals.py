"""Commands about approvals: /approvals /approve /deny."""

from __future__ import annotations

from bot.access import Access
from bot.commands import command
from bot.config import Role
from bot.intake.actions import Actions
from bot.intake.command_spec import CommandContext
from bot.runs.approvals import Approvals
from bot.runs.cards import describe
from bot.text import Piece, bold, code
from roster.agent import Action


class ApprovalCommands:
    """What waits for a decision, and deciding it."""

    def __init__(
        self,
        *,
        approvals: Approvals,
        access: Access,
        actions: Actions,
    ) -> None:
        self._approvals = approvals
        self._access = access
        self._actions = actions

    @command("approvals", role=Role.VIEWER, help="what waits for a decision", immediate=True)
    async def approvals(self, ctx: CommandContext) -> None:
        pending = await self._approvals.pending()
        if not pending:
            await ctx.reply("Nothing waits for approval.")
            return
        lines: list[Piece] = [bold("Pending approvals"), "\n"]
        for row in pending:
            action = describe(Action.from_json(row.action))
            lines += [
                code(row.id),
                f" {row.agent}: {action} (asked by {self._access.display(row.requested_by)})\n",
            ]
        await ctx.reply(*lines)

    @command("approve", role=Role.OPERATOR, help="approve a request", usage="<id>", immediate=True)
    async def approve(self, ctx: CommandContext) -> None:
        await self._decide(ctx, "approve")

    @command(
        "deny", role=Role.OPERATOR, help="deny a request", usage="<id> [reason]", immediate=True
    )
    async def deny(self, ctx: CommandContext) -> None:
        await self._decide(ctx, "deny")

    async def _decide(self, ctx: CommandContext, choice: str) -> None:
        approval_id, _, reason = ctx.args.strip().partition(" ")
        if not approval_id:
            await ctx.reply(f"Usage: /{choice} <id>. /approvals lists the ids.")
            return
        await self._actions.decide(ctx.incoming, approval_id, choice, reason.strip())
