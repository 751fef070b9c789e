"""Chat commands: a registry of typed specs, filled by the `@command` decorator."""

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


REGISTRY: dict[str, CommandSpec] = {}


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
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        if not inspect.iscoroutinefunction(handler):
            raise TypeError(f"/{name}: the handler must be an async function")
        if name in REGISTRY:
            raise ValueError(f"/{name} is registered twice")
        REGISTRY[name] = CommandSpec(
            name, handler, role, help, usage, immediate, with_agents, private_args, once
        )
        return handler

    return register


def spec_of(text: str, commands: Mapping[str, CommandSpec] = REGISTRY) -> CommandSpec | None:
    """The command `text` invokes (`/name args`, Telegram's `/name@bot` too), if any."""
    if not text.startswith("/"):
        return None
    name = text[1:].partition(" ")[0].split("@", 1)[0].lower()
    return commands.get(name)


def keeps_args_private(text: str, commands: Mapping[str, CommandSpec] = REGISTRY) -> bool:
    """Whether `text` is a command whose arguments must not be shown or stored (`private_args`).

    Where a platform would show what was typed (Slack's echo of a slash command) or a
    copy would be kept, this decides; the command's spec is the one place it is declared.
    """
    spec = spec_of(text.strip(), commands)
    return spec is not None and spec.private_args


def load_all() -> dict[str, CommandSpec]:
    """Import every module in this package (they register on import); return the registry."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        if module.name != "context":
            importlib.import_module(f"{__name__}.{module.name}")
    return REGISTRY


Payload = dict[str, Any]


def inbox_form(commands: Mapping[str, CommandSpec]) -> Callable[[Payload], Payload]:
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
