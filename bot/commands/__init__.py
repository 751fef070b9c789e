"""Chat commands: groups of them, each a small class given the deck's parts it uses.

Each module holds one group (`AgentCommands`, `JobCommands`, …): its constructor names
the collaborators its commands use, and its methods marked `@command` are the commands.
No command is given the whole deck. Nothing registers on import: `bot.graph` builds the
groups and `bind_commands` binds their commands into the table the dispatcher runs (as
PTB and bolt register handlers on their application); `command_table` is the menu alone
(the specs, no group built), which the transports and the inbox read. What a command is
to the dispatcher (`CommandSpec`, `CommandContext`) is declared in
`bot.intake.command_spec`.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from bot.intake.command_spec import (
    Command,
    Commands,
    CommandSpec,
    Declared,
    command,
    declared,
    inbox_form,
    keeps_args_private,
    spec_of,
)

__all__ = [
    "Command",
    "CommandSpec",
    "Commands",
    "bind_commands",
    "command",
    "command_table",
    "group_classes",
    "inbox_form",
    "keeps_args_private",
    "spec_of",
]


def group_classes() -> list[type]:
    """Every command group class of this package's modules, each from the module defining it."""
    groups: list[type] = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for item in vars(module).values():
            if isinstance(item, type) and item.__module__ == module.__name__ and declared(item):
                groups.append(item)
    return groups


def _table(items: list[Declared[Any]]) -> dict[str, Declared[Any]]:
    table: dict[str, Declared[Any]] = {}
    for item in items:
        if item.spec.name in table:
            raise ValueError(f"/{item.spec.name} is defined twice")
        table[item.spec.name] = item
    return table


def command_table() -> dict[str, CommandSpec]:
    """The menu: every command's spec, by name (no group is built); a new table each call."""
    items = _table([item for group in group_classes() for item in declared(group)])
    return {name: item.spec for name, item in items.items()}


def bind_commands(groups: list[object]) -> dict[str, Command]:
    """The commands of built groups, bound to them, by name: one group of each class here."""
    given = [type(group) for group in groups]
    missing = [cls.__name__ for cls in group_classes() if cls not in given]
    if missing or len(set(given)) != len(given):
        raise ValueError(f"one group of each class is needed; missing: {missing or 'none'}")
    items = [(group, item) for group in groups for item in declared(type(group))]
    _table([item for _group, item in items])  # each name once
    return {item.spec.name: item.bind(group) for group, item in items}
