"""Secrets from chat: /secret set|delete (an admin, in a private chat) and /secrets."""

from __future__ import annotations

from bot.commands import command
from bot.commands.context import CommandContext
from bot.config import Role
from bot.errors import TransportError
from bot.text import Piece, bold, code
from bot.types import MessageRef
from storage.errors import VaultError

USAGE = "set <NAME> <value> | delete <NAME>"


@command(
    "secret",
    role=Role.ADMIN,
    help="store or delete an encrypted secret (in a private chat)",
    usage=USAGE,
    private_args=True,
)
async def secret(ctx: CommandContext) -> None:
    verb, _, rest = ctx.args.partition(" ")
    if verb.lower() == "set":
        await _set(ctx, rest.strip())
    elif verb.lower() == "delete":
        await _delete(ctx, rest.strip())
    else:
        await ctx.reply("Usage: /secret ", USAGE)


@command("secrets", role=Role.ADMIN, help="the names of stored secrets (never values)")
async def secrets(ctx: CommandContext) -> None:
    listing = await ctx.deck.vault.listing()
    if not listing:
        await ctx.reply("No secrets stored. /secret set <NAME> <value> in a private chat.")
        return
    lines: list[Piece] = [bold("Secrets"), "\n"]
    for info in listing:
        lines += [code(info.name), f" set by {info.set_by} at {info.set_at:%Y-%m-%d %H:%M} UTC\n"]
    await ctx.reply(*lines)


async def _set(ctx: CommandContext, rest: str) -> None:
    name, _, value = rest.partition(" ")
    # Delete first: the value should stay visible for as short a time as possible.
    deleted = await _delete_message(ctx)
    if not ctx.incoming.private:
        ctx.deck.audit.record(ctx.user, "secret.refused", name, reason="not a private chat")
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
        await ctx.deck.vault.set(name, value.strip(), by=ctx.user)
    except VaultError as exc:
        ctx.deck.audit.record(ctx.user, "secret.refused", name, reason=str(exc))
        await ctx.reply(str(exc), " ", deleted)
        return
    ctx.deck.audit.record(ctx.user, "secret.set", name, chat=ctx.incoming.chat)
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


async def _delete(ctx: CommandContext, name: str) -> None:
    if not name:
        await ctx.reply("Usage: /secret delete <NAME>")
        return
    try:
        await ctx.deck.vault.delete(name)
    except VaultError as exc:
        await ctx.reply(str(exc))
        return
    ctx.deck.audit.record(ctx.user, "secret.deleted", name, chat=ctx.incoming.chat)
    await ctx.reply("Deleted ", code(name), ".")


async def _delete_message(ctx: CommandContext) -> str:
    """Delete the message that held the value, where the transport allows; say what happened."""
    incoming = ctx.incoming
    if incoming.message_id is None:
        return "This chat cannot delete your message: remove it yourself if others can see it."
    ref = MessageRef(chat=incoming.chat, message_id=incoming.message_id, thread=incoming.thread)
    try:
        await ctx.deck.postman.delete(ref)
    except TransportError:
        return "I could not delete your message: delete it yourself."
    return "I deleted your message."
