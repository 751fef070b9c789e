"""/dashboard: a one-time link that signs this chat identity in to the web dashboard."""

from __future__ import annotations

from bot.commands import command
from bot.config import CurrentConfig, Role
from bot.delivery.direct import minted_link
from bot.delivery.postman import Postman
from bot.intake.command_spec import CommandContext
from storage.audit import AuditLog

SIGNIN = "signin"  # the kind of minted link the dashboard makes (`Dashboard.__aenter__`)

OFF = "The dashboard is switched off ([dashboard] enabled = false in the config)."
NOT_PRIVATE = "Ask me for the dashboard link in a private chat: the link signs in whoever opens it."


class DashboardCommands:
    """The sign-in link to the web dashboard."""

    def __init__(
        self,
        *,
        config: CurrentConfig,
        postman: Postman,
        audit: AuditLog,
    ) -> None:
        self._config = config
        self._postman = postman
        self._audit = audit

    @command(
        "dashboard", role=Role.OPERATOR, help="a sign-in link to the web dashboard", immediate=True
    )
    async def dashboard(self, ctx: CommandContext) -> None:
        if not self._postman.mints(SIGNIN):  # the dashboard registers the minter as it starts
            await ctx.reply(OFF)
            return
        if not ctx.incoming.private:
            self._audit.record(
                ctx.user, "dashboard.refused", ctx.incoming.chat, reason="not private"
            )
            await ctx.reply(NOT_PRIVATE)
            return
        minutes = self._config().dashboard.link_minutes
        self._audit.record(ctx.user, "dashboard.link", ctx.incoming.chat)  # never the link itself
        # Made when the reply goes out (again at each attempt): the outbox keeps no link.
        await ctx.reply(
            "Your dashboard sign-in link:\n",
            minted_link(SIGNIN, ctx.user),
            f"\nIt works once, within {minutes:g} minutes.",
        )
