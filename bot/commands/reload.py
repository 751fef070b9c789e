"""/reload: re-read the config file and apply it without a restart (as SIGHUP does)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.commands import command
from bot.config import Role
from bot.intake.command_spec import CommandContext


class ReloadCommands:
    """Re-reading the config file."""

    def __init__(
        self,
        *,
        reload: Callable[[str], Awaitable[str]],  # (by whom) -> the one-line answer
    ) -> None:
        self._reload = reload

    @command(
        "reload",
        role=Role.ADMIN,
        help="re-read the config file: agents, users, bindings, budgets apply at once",
        immediate=True,
    )
    async def reload(self, ctx: CommandContext) -> None:
        await ctx.reply(await self._reload(ctx.user))
