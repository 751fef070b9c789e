"""The command table: groups built with what they use, their commands bound on the instance."""

from __future__ import annotations

import pytest

from bot.commands import CommandSpec, bind_commands, command, command_table, group_classes
from bot.config import Role
from bot.intake.command_spec import CommandContext, declared
from bot.text import rich
from bot.types import Incoming, Outgoing


def test_each_table_is_its_own() -> None:
    first = command_table()
    first.pop("help")
    assert "help" in command_table()  # a table handed to one app changes no other


def test_the_table_holds_every_command_once_under_its_own_name() -> None:
    table = command_table()
    assert all(isinstance(spec, CommandSpec) and spec.name == name for name, spec in table.items())
    assert {"help", "ask", "approve", "deny", "secret", "status", "stop"} <= set(table)


def test_a_handler_that_is_not_async_is_refused_at_once() -> None:
    def not_async(_group: object, _ctx: CommandContext) -> None:
        return None

    with pytest.raises(TypeError, match="/sync: the handler must be an async function"):
        command("sync", role=Role.VIEWER, help="")(not_async)  # type: ignore[arg-type]


class Echo:
    """A group of one command, given what it says to its constructor."""

    def __init__(self, *, word: str) -> None:
        self._word = word

    @command("echo", role=Role.VIEWER, help="says its word")
    async def echo(self, ctx: CommandContext) -> None:
        await ctx.reply(self._word)


def test_a_group_missing_from_the_table_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"needed; missing: \['AgentCommands', 'ApprovalCommands',"
    ):
        bind_commands([Echo(word="hi")])


async def test_a_command_is_bound_to_the_group_built_for_it() -> None:
    sent: list[Outgoing] = []

    async def send(message: Outgoing) -> None:
        sent.append(message)

    (item,) = declared(Echo)
    command = item.bind(Echo(word="hi"))
    incoming = Incoming(transport="test", chat="test:1", user="test:ada", text="/echo")
    await command.handler(CommandContext(incoming, "echo", "", Role.VIEWER, {}, send))
    assert [m.text for m in sent] == [rich("hi")]
    assert command.spec.name == "echo"


def test_the_menu_is_every_group_class_s_commands() -> None:
    classes = group_classes()
    assert len(classes) == 13  # one group per module of bot/commands
    names = [item.spec.name for cls in classes for item in declared(cls)]
    assert sorted(names) == sorted(command_table())
