"""The command table: built on request from the command modules, nothing global to fill."""

from __future__ import annotations

import pytest

from bot.commands import CommandSpec, command, command_table
from bot.commands.context import CommandContext
from bot.config import Role


def test_each_table_is_its_own() -> None:
    first = command_table()
    first.pop("help")
    assert "help" in command_table()  # a table handed to one app changes no other


def test_the_table_holds_every_command_once_under_its_own_name() -> None:
    table = command_table()
    assert all(isinstance(spec, CommandSpec) and spec.name == name for name, spec in table.items())
    assert {"help", "ask", "approve", "deny", "secret", "status", "stop"} <= set(table)


def test_a_handler_that_is_not_async_is_refused_at_once() -> None:
    def not_async(_ctx: CommandContext) -> None:
        return None

    with pytest.raises(TypeError, match="/sync: the handler must be an async function"):
        command("sync", role=Role.VIEWER, help="")(not_async)  # type: ignore[arg-type]
