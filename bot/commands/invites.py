"""People from chat: /invite makes a one-time code, /start <code> redeems it, /users lists
and removes those added so (`bot.invites` holds the rules)."""

from __future__ import annotations

from bot.access import Access
from bot.commands import command
from bot.config import CurrentConfig, Role
from bot.intake.command_spec import CommandContext
from bot.intake.welcome import Welcome
from bot.invites import DEFAULT_HOURS, MAX_HOURS, Invites
from bot.text import Piece, bold, code
from storage.audit import AuditLog

INVITE_USAGE = (
    f"/invite <admin|operator|viewer> [hours, 1 to {MAX_HOURS}; {DEFAULT_HOURS} if not said]"
)


class InviteCommands:
    """People added from chat: invite codes, redeeming them, the list."""

    def __init__(
        self,
        *,
        config: CurrentConfig,
        access: Access,
        audit: AuditLog,
        invites: Invites,
        welcome: Welcome,
    ) -> None:
        self._config = config
        self._access = access
        self._audit = audit
        self._invites = invites
        self._welcome = welcome

    @command(
        "invite",
        role=Role.ADMIN,
        help="a one-time code that adds someone with a role (in a private chat)",
        usage="<role> [hours]",
        immediate=True,
    )
    async def invite(self, ctx: CommandContext) -> None:
        parsed = _parse(ctx.args)
        if isinstance(parsed, str):
            await ctx.reply(parsed)
            return
        role, hours = parsed
        if not ctx.incoming.private:
            self._audit.record(ctx.user, "invite.refused", "", reason="not a private chat")
            await ctx.reply(
                "Send /invite in a private chat with me: the code is a key, and everyone here "
                "would see it. No code was made."
            )
            return
        if not ctx.role.allows(role):
            self._audit.record(ctx.user, "invite.refused", "", reason=f"{role} above own role")
            await ctx.reply(f"An invite cannot grant {role}: that is above your role ({ctx.role}).")
            return
        secret = await self._invites.create(ctx.user, ctx.role, role, hours)
        await ctx.reply(
            "Invite for the ",
            bold(role.value),
            f" role, for one person, valid {hours} h. They send me:\n",
            code(f"/start {secret}"),
            "\nIt works once; /users lists who joined.",
        )

    @command(
        "users",
        role=Role.ADMIN,
        help="who may use me; `remove <id>` removes someone added by invite",
        usage="[remove <id>]",
        immediate=True,
    )
    async def users(self, ctx: CommandContext) -> None:
        verb, _, target = ctx.args.strip().partition(" ")
        if verb.lower() == "remove":
            await self._remove(ctx, target.strip())
        elif verb:
            await ctx.reply("Usage: /users, or /users remove <id> (as /users lists it).")
        else:
            await self._list(ctx)

    async def _list(self, ctx: CommandContext) -> None:
        lines: list[Piece] = [bold("From the config ([[users]])"), "\n"]
        for entry in self._config().users:
            lines.append(f"{self._access.display(entry.id)}: {entry.role}\n")
        invited = [p for p in await self._invites.people() if not self._access.is_listed(p.id)]
        lines += [bold("Added by invite"), "\n"]
        for person in invited:
            lines.append(
                f"{person.id}: {person.role} "
                f"(invited by {self._access.display(person.invited_by)}, "
            )
            lines.append(f"{person.added_at:%Y-%m-%d %H:%M} UTC)\n")
        if not invited:
            lines.append("nobody yet\n")
        lines.append(f"Open invite codes: {await self._invites.open_codes()}.")
        await ctx.reply(*lines)

    async def _remove(self, ctx: CommandContext, target: str) -> None:
        if not target:
            await ctx.reply(
                "Usage: /users remove <id>, for example /users remove telegram:123456789"
            )
            return
        if self._access.is_listed(target):
            await ctx.reply(f"{target} is listed in the config ([[users]]): remove them there.")
            return
        if not await self._invites.remove(ctx.user, target):
            await ctx.reply(f"Nobody added by invite has the id {target}. /users lists them.")
            return
        await ctx.reply(f"Removed {target}: they can no longer use me.")

    async def join(self, ctx: CommandContext) -> None:
        """`/start <code>` from someone already known: a listed person keeps their role; someone
        added by invite takes the new code's role."""
        if self._access.is_listed(ctx.user):
            await ctx.reply(
                f"You are already in the config as {ctx.role}; the code was not used "
                "(it still works for someone else)."
            )
            return
        joined = await self._invites.redeem(ctx.user, ctx.args.strip())
        await ctx.reply(*self._welcome.joined(ctx.incoming, joined))


def _parse(args: str) -> tuple[Role, int] | str:
    words = args.split()
    if not 1 <= len(words) <= 2:
        return f"Usage: {INVITE_USAGE}"
    try:
        role = Role(words[0].lower())
    except ValueError:
        return f"No role {words[0]!r}. Usage: {INVITE_USAGE}"
    hours = words[1] if len(words) == 2 else str(DEFAULT_HOURS)
    if not hours.isdigit() or not 1 <= int(hours) <= MAX_HOURS:
        return f"Hours must be a whole number from 1 to {MAX_HOURS}. Usage: {INVITE_USAGE}"
    return role, int(hours)
