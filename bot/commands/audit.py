"""/audit: the newest audit events, for admins, with the chain's state."""

from __future__ import annotations

from bot.commands import command
from bot.config import Role
from bot.intake.command_spec import CommandContext
from bot.runs.runner import Runner
from bot.text import Piece, bold, code
from storage.audit import AuditLog

MAX_EVENTS = 50


class AuditCommands:
    """The audit trail, newest first, and whether its chain holds."""

    def __init__(
        self,
        *,
        runner: Runner,
        audit: AuditLog,
    ) -> None:
        self._runner = runner
        self._audit = audit

    @command("audit", role=Role.ADMIN, help="the newest audit events", usage="[n]")
    async def audit(self, ctx: CommandContext) -> None:
        arg = ctx.args.strip()
        count = min(int(arg), MAX_EVENTS) if arg.isdigit() and int(arg) > 0 else 10
        await self._runner.flush()
        events = await self._audit.tail(count)
        broken = (await self._audit.verify()).broken
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
