"""/reload: re-read the config file and apply it without a restart (as SIGHUP does)."""

from __future__ import annotations

from bot.commands import command
from bot.commands.context import CommandContext
from bot.config import Role
from bot.reload import reload_config


@command(
    "reload",
    role=Role.ADMIN,
    help="re-read the config file: agents, users, bindings, budgets apply at once",
    immediate=True,
)
async def reload(ctx: CommandContext) -> None:
    result = await reload_config(ctx.deck, by=ctx.user)
    await ctx.reply(result.text)
