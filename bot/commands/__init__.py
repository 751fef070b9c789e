"""Chat commands: typed specs made by the `@command` decorator, gathered into a table.

Nothing registers on import: `@command` turns a handler into its `CommandSpec`, and
`command_table()` collects the specs of this package's modules into a new table that
the app hands to the dispatcher and the transports (as PTB and bolt register handlers
on their application, not in a module-level registry).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.config import Role

if TYPE_CHECKING:
    from bot.commands.context import CommandContext

Handler = Callable[["CommandContext"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str
    handler: Handler
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


Commands = Mapping[str, CommandSpec]  # the command table: name -> spec


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
) -> Callable[[Handler], CommandSpec]:
    def spec(handler: Handler) -> CommandSpec:
        if not inspect.iscoroutinefunction(handler):
            raise TypeError(f"/{name}: the handler must be an async function")
        return CommandSpec(
            name, handler, role, help, usage, immediate, with_agents, private_args, once
        )

    return spec


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


def command_table() -> dict[str, CommandSpec]:
    """Every command of this package's modules, by name: a new table at each call."""
    import importlib
    import pkgutil

    table: dict[str, CommandSpec] = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name == "context":
            continue
        for spec in vars(importlib.import_module(f"{__name__}.{module.name}")).values():
            if not isinstance(spec, CommandSpec) or table.get(spec.name) is spec:
                continue
            if spec.name in table:
                raise ValueError(f"/{spec.name} is defined twice")
            table[spec.name] = spec
    return table


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
