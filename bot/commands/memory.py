"""Memory commands: /memory lists notes; /forget clears conversation or notes."""

from __future__ import annotations

from bot.commands import command
from bot.config import Role
from bot.intake.command_spec import CommandContext
from bot.runs.approvals import Approvals
from bot.text import Piece, bold, code
from roster.errors import AgentNotFound
from roster.roster import Roster
from roster.spec import CHAT_MEMORY
from storage.audit import AuditLog
from storage.memory import Memory

NOTES_SHOWN = 30


class MemoryCommands:
    """What agents keep about a chat, and forgetting it."""

    def __init__(
        self,
        *,
        memory: Memory,
        audit: AuditLog,
        approvals: Approvals,
        roster: Roster,
    ) -> None:
        self._memory = memory
        self._audit = audit
        self._approvals = approvals
        self._roster = roster

    @command("memory", role=Role.VIEWER, help="an agent's notes about this chat", usage="[agent]")
    async def memory(self, ctx: CommandContext) -> None:
        name = ctx.args.strip().lower()
        key = await self._memory_key(ctx, name) if name else None
        if name and key is None:
            return
        rows = await self._memory.notes(ctx.incoming.chat, key, limit=NOTES_SHOWN)
        whose = f" of {name}" if name else ""
        if not rows:
            await ctx.reply(f"No notes{whose} in this chat.")
            return
        lines: list[Piece] = [bold(f"Notes{whose}"), " (newest first)\n"]
        for note in rows:
            owner = "" if name else f"{'shared' if note.agent == CHAT_MEMORY else note.agent} · "
            lines += [code(f"{note.created_at:%Y-%m-%d %H:%M}"), f" {owner}{note.text}\n"]
        await ctx.reply(*lines)

    @command(
        "forget",
        role=Role.OPERATOR,
        help="clear this chat's conversation memory, or with `notes` its notes",
        usage="[notes] [agent]",
        with_agents=True,  # after the run that is still adding to what it would clear
    )
    async def forget(self, ctx: CommandContext) -> None:
        words = ctx.args.lower().split()
        notes = bool(words) and words[0] == "notes"
        name = (words[1:] if notes else words)[:1]
        key = await self._memory_key(ctx, name[0]) if name else None
        if name and key is None:
            return
        chat = ctx.incoming.chat
        with_whom = f" with {name[0]}" if name else ""
        if notes:
            removed = await self._memory.forget_notes(chat, key)
            self._audit.record(ctx.user, "memory.notes_forgotten", chat, key=key, rows=removed)
            await ctx.reply(f"Forgot {removed} note(s){with_whom}.")
            return
        removed = await self._memory.forget(chat, key)
        await self._approvals.end_conversation(chat)  # "approve for this conversation" ends too
        self._audit.record(ctx.user, "memory.forgotten", chat, key=key, rows=removed)
        await ctx.reply(f"Forgot {removed} message(s){with_whom}.")

    async def _memory_key(self, ctx: CommandContext, name: str) -> str | None:
        """The memory an agent uses (its own or the chat's shared one); None after a reply."""
        try:
            return self._roster.get(name).spec.memory_key
        except AgentNotFound as exc:
            await ctx.reply(str(exc))
            return None
