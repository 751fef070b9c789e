"""Chat commands: a registry of typed specs, filled by the `@command` decorator."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

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
    # Runs at once instead of queueing behind the chat's running work (/stop, /approve).
    immediate: bool = False
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
    private_args: bool = False,
    once: bool = False,
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        if not inspect.iscoroutinefunction(handler):
            raise TypeError(f"/{name}: the handler must be an async function")
        if name in REGISTRY:
            raise ValueError(f"/{name} is registered twice")
        REGISTRY[name] = CommandSpec(
            name, handler, role, help, usage, immediate, private_args, once
        )
        return handler

    return register


def load_all() -> dict[str, CommandSpec]:
    """Import every module in this package (they register on import); return the registry."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        if module.name != "context":
            importlib.import_module(f"{__name__}.{module.name}")
    return REGISTRY
