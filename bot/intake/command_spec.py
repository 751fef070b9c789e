"""What a chat command is to the dispatcher: its spec, its handler, and what the handler gets.

A command is a method of a command group (`bot.commands`), a small class given the
deck's parts it uses to its constructor; `@command` marks the method with the command's
`CommandSpec`. `bot.commands.bind_commands` binds the methods of built groups into the
table the dispatcher runs (`Command`: the spec and its handler);
`bot.commands.command_table` is the menu alone (the specs, no group built), which the
transports and the inbox read.
Declared here, beside the dispatcher that runs them, so that the dispatcher does not
import the commands, which use this stage's actions.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bot.config import Role
from bot.text import Piece, rich
from bot.types import Incoming, Outgoing


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str
    role: Role
    help: str
    usage: str = ""
    # Which lane of the chat it runs in. By default commands run in order among the chat's
    # commands but never wait for an agent's run (/jobs answers while a deploy runs);
    # `immediate` runs at once, not even in order (/stop, /approve); `with_agents` queues
    # behind the chat's agent runs, for what talks to an agent or changes what one reads.
    immediate: bool = False
    with_agents: bool = False
    # The arguments may hold a value that must not be stored (/secret set): not audited.
    private_args: bool = False
    # Its effect must not happen twice (a new job, a job run now): the update is marked
    # handled, durably, before it acts. A crash in between loses it; it never repeats.
    once: bool = False


Commands = Mapping[str, CommandSpec]  # the menu: name -> spec


@dataclass(frozen=True, slots=True)
class CommandContext:
    """What a handler gets: the message, its arguments, and a way to answer in its chat."""

    incoming: Incoming
    name: str
    args: str
    role: Role
    commands: Commands  # the menu this command came from (/help lists it)
    send: Callable[[Outgoing], Awaitable[object]]  # the postman's `send`

    @property
    def user(self) -> str:
        return self.incoming.user

    async def reply(self, *pieces: Piece) -> None:
        message = Outgoing(chat=self.incoming.chat, thread=self.incoming.thread, text=rich(*pieces))
        await self.send(message)


Handler = Callable[[CommandContext], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Command:
    """A command of a built group: its spec and its bound handler."""

    spec: CommandSpec
    handler: Handler


Group = TypeVar("Group")
Method = Callable[[Group, CommandContext], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Declared(Generic[Group]):
    """A group's method marked by `@command`: bound to a built group by `bind`."""

    spec: CommandSpec
    method: Method[Group]

    def bind(self, group: Group) -> Command:
        method = self.method

        async def handler(ctx: CommandContext) -> None:
            await method(group, ctx)

        return Command(self.spec, handler)


def command(
    name: str,
    *,
    role: Role,
    help: str,
    usage: str = "",
    immediate: bool = False,
    with_agents: bool = False,
    private_args: bool = False,
    once: bool = False,
) -> Callable[[Method[Group]], Declared[Group]]:
    """Mark a command group's method as the handler of `/name`."""

    def declare(method: Method[Group]) -> Declared[Group]:
        if not inspect.iscoroutinefunction(method):
            raise TypeError(f"/{name}: the handler must be an async function")
        spec = CommandSpec(name, role, help, usage, immediate, with_agents, private_args, once)
        return Declared(spec, method)

    return declare


def declared(group_class: type) -> list[Declared[Any]]:
    """The commands a group class declares, in the order it declares them."""
    return [item for item in vars(group_class).values() if isinstance(item, Declared)]


def spec_of(text: str, commands: Commands) -> CommandSpec | None:
    """The command `text` invokes (`/name args`, Telegram's `/name@bot` too), if any."""
    if not text.startswith("/"):
        return None
    name = text[1:].partition(" ")[0].split("@", 1)[0].lower()
    return commands.get(name)


def keeps_args_private(text: str, commands: Commands) -> bool:
    """Whether `text` is a command whose arguments must not be shown or stored (`private_args`).

    Where a platform would show what was typed (Slack's echo of a slash command) or a
    copy would be kept, this decides; the command's spec is the one place it is declared.
    """
    spec = spec_of(text.strip(), commands)
    return spec is not None and spec.private_args


Payload = dict[str, Any]


def inbox_form(commands: Commands) -> Callable[[Payload], Payload]:
    """How an update is stored in the inbox: a command with private arguments without them.

    The row is written before the update is handled, and lingers (a WAL, freed pages):
    `/secret set NAME value` is stored as `/secret`, marked `redacted`. The handler gets
    the update from memory; read back after a crash, it is refused ("send it again").
    Words are split as loosely as any command parser would, so more is dropped, not less.
    """
    private = frozenset(name for name, spec in commands.items() if spec.private_args)

    def stored(payload: Payload) -> Payload:
        text = payload.get("text")
        if not isinstance(text, str) or not text.lstrip().startswith("/"):
            return payload
        name = text.split(maxsplit=1)[0][1:].split("@", 1)[0].lower()
        if name not in private:
            return payload
        return {**payload, "text": f"/{name}", "redacted": True}

    return stored
