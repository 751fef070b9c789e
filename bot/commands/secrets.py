"""Secrets from chat: /secret set|delete (an admin, in a private chat) and /secrets."""

from __future__ import annotations

from bot.commands import command
from bot.config import Role
from bot.delivery.postman import Postman
from bot.errors import TransportError
from bot.intake.command_spec import CommandContext
from bot.text import Piece, bold, code
from bot.types import MessageRef
from storage.audit import AuditLog
from storage.errors import VaultError
from storage.secrets import Vault

USAGE = "set <NAME> <value> | delete <NAME>"


class SecretCommands:
    """Encrypted secrets: setting, deleting, listing names."""

    def __init__(
        self,
        *,
        vault: Vault,
        audit: AuditLog,
        postman: Postman,
    ) -> None:
        self._vault = vault
        self._audit = audit
        self._postman = postman

    @command(
        "secret",
        role=Role.ADMIN,
        help="store or delete an encrypted secret (in a private chat)",
        usage=USAGE,
        private_args=True,
    )
    async def secret(self, ctx: CommandContext) -> None:
        verb, _, rest = ctx.args.partition(" ")
        if verb.lower() == "set":
            await self._set(ctx, rest.strip())
        elif verb.lower() == "delete":
            await self._delete(ctx, rest.strip())
        else:
            await ctx.reply("Usage: /secret ", USAGE)

    @command("secrets", role=Role.ADMIN, help="the names of stored secrets (never values)")
    async def secrets(self, ctx: CommandContext) -> None:
        listing = await self._vault.listing()
        if not listing:
            await ctx.reply("No secrets stored. /secret set <NAME> <value> in a private chat.")
            return
        lines: list[Piece] = [bold("Secrets"), "\n"]
        for info in listing:
            lines += [
                code(info.name),
                f" set by {info.set_by} at {info.set_at:%Y-%m-%d %H:%M} UTC\n",
            ]
        await ctx.reply(*lines)

    async def _set(self, ctx: CommandContext, rest: str) -> None:
        name, _, value = rest.partition(" ")
        # Delete first: the value should stay visible for as short a time as possible.
        deleted = await self._delete_message(ctx)
        if not ctx.incoming.private:
            self._audit.record(ctx.user, "secret.refused", name, reason="not a private chat")
            await ctx.reply(
                "Secrets are set only in a private chat with me; nothing was stored. ",
                deleted,
                " Others here may have seen the value: treat it as leaked and change it.",
            )
            return
        if not name or not value.strip():
            await ctx.reply("Usage: /secret set <NAME> <value>. ", deleted)
            return
        try:
            await self._vault.set(name, value.strip(), by=ctx.user)
        except VaultError as exc:
            self._audit.record(ctx.user, "secret.refused", name, reason=str(exc))
            await ctx.reply(str(exc), " ", deleted)
            return
        self._audit.record(ctx.user, "secret.set", name, chat=ctx.incoming.chat)
        await ctx.reply(
            "Stored ",
            code(name),
            ". Agents that list it in ",
            code("secrets"),
            " can use ",
            code(f"secret:{name}"),
            ". ",
            deleted,
        )

    async def _delete(self, ctx: CommandContext, name: str) -> None:
        if not name:
            await ctx.reply("Usage: /secret delete <NAME>")
            return
        try:
            await self._vault.delete(name)
        except VaultError as exc:
            await ctx.reply(str(exc))
            return
        self._audit.record(ctx.user, "secret.deleted", name, chat=ctx.incoming.chat)
        await ctx.reply("Deleted ", code(name), ".")

    async def _delete_message(self, ctx: CommandContext) -> str:
        """Delete the message that held the value, where the transport allows; say what happened."""
        incoming = ctx.incoming
        if incoming.message_id is None:
            return "This chat cannot delete your message: remove it yourself if others can see it."
        ref = MessageRef(chat=incoming.chat, message_id=incoming.message_id, thread=incoming.thread)
        try:
            await self._postman.delete(ref)
        except TransportError:
            return "I could not delete your message: delete it yourself."
        return "I deleted your message."
