"""Coding agents' sessions in this chat: /new starts afresh, /sessions lists them."""

from __future__ import annotations

from bot.commands import command
from bot.config import Role
from bot.intake.command_spec import CommandContext
from bot.text import Piece, bold, code
from roster.errors import AgentNotFound
from roster.roster import Roster
from storage.audit import AuditLog
from storage.clock import Clock
from storage.sessions import AgentSessions, chat_key


class SessionCommands:
    """Coding agents' sessions in a chat."""

    def __init__(
        self,
        *,
        agent_sessions: AgentSessions,
        roster: Roster,
        audit: AuditLog,
        clock: Clock,
    ) -> None:
        self._agent_sessions = agent_sessions
        self._roster = roster
        self._audit = audit
        self._clock = clock

    def _sessions(self, ctx: CommandContext) -> AgentSessions:
        return self._agent_sessions

    @command(
        "new",
        role=Role.OPERATOR,
        help="start a fresh session with a coding agent (all of them without a name)",
        usage="[agent]",
        with_agents=True,  # after the turn that still adds to the session it ends
    )
    async def new(self, ctx: CommandContext) -> None:
        name = ctx.args.strip().lower() or None
        if name is not None:
            try:
                name = self._roster.get(name).name
            except AgentNotFound as exc:
                await ctx.reply(str(exc))
                return
        ended = await self._sessions(ctx).forget(_where(ctx), name)
        self._audit.record(ctx.user, "session.new", _where(ctx), agent=name, ended=ended)
        whose = f" with {name}" if name else ""
        await ctx.reply(f"New session{whose}: the next message starts afresh ({ended} ended).")

    @command("sessions", role=Role.VIEWER, help="this chat's coding-agent sessions")
    async def sessions(self, ctx: CommandContext) -> None:
        rows = await self._sessions(ctx).of_chat(_where(ctx))
        if not rows:
            await ctx.reply("No coding-agent sessions in this chat.")
            return
        now = self._clock.now()
        lines: list[Piece] = [bold("Sessions"), "\n"]
        for row in rows:
            age = _age((now - row.started_at).total_seconds())
            idle = _age((now - row.used_at).total_seconds())
            lines += [
                bold(row.agent),
                " ",
                code(row.session_id[:12]),
                f" · {age} old, last used {idle} ago · {row.turns} turn(s) · ${row.cost:.4f}",
                f" · {row.tokens_in + row.tokens_out} tokens\n",
            ]
        await ctx.reply(*lines)


def _where(ctx: CommandContext) -> str:
    return chat_key(ctx.incoming.chat, ctx.incoming.thread)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"
