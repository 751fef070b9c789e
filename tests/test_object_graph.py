"""The object graph is built in one place, with no late setters; imports circle only locally.

Two properties of the code itself (#16 point 2), checked on the source:

- Import cycles: over the whole import graph of `bot`, `roster`, `scheduler` and
  `storage` (imports under `TYPE_CHECKING` included: they tie modules together as
  much for a reader and for mypy), every cycle stays inside one package and spans at
  most `MAX_CYCLE` modules. Before, 22 modules circled through `bot/deck.py` (the deck
  ↔ the dashboard, commands, actions, reload, metrics).
- No handler reaches the deck: the chat commands, the intake (dispatcher, actions) and
  the dashboard's pages import nothing that leads to `bot/deck.py`, and no command
  group is given the deck: each names the collaborators it uses.
- No late setters: the modules that build and start a deck assign no attribute of
  another object, and call no `setattr`; the collaborators that used to be set after
  construction (`postman.outbox`, `runner.job_reports`, `deck.links`, …) are assigned
  nowhere in `bot/` but in their owner's own methods; the direct sender and the
  transport links are built from the transports (no `add` after); every field of `Deck` exists
  when it is constructed.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import typing
from pathlib import Path

import grimp

from bot.commands import group_classes
from bot.deck import Deck
from bot.delivery.direct import Direct
from bot.delivery.transport_links import TransportLinks
from bot.intake.command_spec import CommandContext
from bot.toolhost import ToolHost

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "roster", "scheduler", "storage")
MAX_CYCLE = 3

# Where the graph is built and started: no attribute of another object is assigned here.
BUILDERS = (
    "bot/app.py",
    "bot/graph.py",
    "bot/deck.py",
    "bot/jobruns.py",
    "bot/toolhost.py",
    "bot/delivery/direct.py",
    "bot/delivery/postman.py",
    "bot/delivery/outbox.py",
    "bot/delivery/transport_links.py",
)
# Collaborators that used to be set after construction, and Deck's fields filled later.
ONCE_LATE = frozenset(
    {"outbox", "job_reports", "links", "writer", "scheduler", "dashboard", "metrics", "started_at"}
)


def cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in sorted(modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root) & modules)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    imported = graph.find_modules_directly_imported_by(child) & modules
                    work.append((child, iter(sorted(imported))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def package_of(graph: grimp.ImportGraph, module: str) -> str:
    """A package stands for itself; a module for the package it is in."""
    return module if graph.find_children(module) else module.rpartition(".")[0]


def too_wide(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """The cycles that span more than `MAX_CYCLE` modules or more than one package."""
    return [
        sorted(component)
        for component in cycles(graph, modules)
        if len(component) > MAX_CYCLE or len({package_of(graph, m) for m in component}) > 1
    ]


@functools.cache
def import_graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, exclude_type_checking_imports=False)


def test_no_import_cycle_spans_more_than_a_few_modules_of_one_package() -> None:
    graph = import_graph()
    modules = {m for m in graph.modules if m.partition(".")[0] in PACKAGES}
    assert too_wide(graph, modules) == []
    in_cycles = set().union(*cycles(graph, modules))
    assert "bot.deck" not in in_cycles  # the old circle's middle
    assert not {"bot.app", "bot.graph", "bot.jobruns", "bot.toolhost"} & in_cycles


def test_the_cycle_check_finds_a_wide_cycle() -> None:
    """The check above can fail: a circle of four modules, or across packages, is found."""
    graph = grimp.ImportGraph()
    for module in ("p", "p.a", "p.b", "p.c", "p.d", "q", "q.x", "r", "r.x", "r.y"):
        graph.add_module(module)
    for importer, imported in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.d"), ("p.d", "p.a")):
        graph.add_import(importer=importer, imported=imported)
    graph.add_import(importer="q.x", imported="p")
    graph.add_import(importer="p", imported="q.x")
    graph.add_import(importer="r.x", imported="r.y")
    graph.add_import(importer="r.y", imported="r.x")
    modules = set(graph.modules)
    assert sorted(too_wide(graph, modules)) == [["p", "q.x"], ["p.a", "p.b", "p.c", "p.d"]]
    assert ["r.x", "r.y"] in map(sorted, cycles(graph, modules))  # found, and let be


HANDLERS = ("bot.commands", "bot.intake", "bot.dashboard.pages", "bot.dashboard.web")


def reaching(graph: grimp.ImportGraph, target: str) -> dict[str, tuple[str, ...]]:
    """Each handler module that imports `target`, directly or not: the chain that does."""
    found = {}
    for module in sorted(graph.modules):
        if module == target or not module.startswith(HANDLERS):
            continue
        if chain := graph.find_shortest_chain(importer=module, imported=target):
            found[module] = chain
    return found


def test_no_command_action_or_page_reaches_the_deck() -> None:
    assert reaching(import_graph(), "bot.deck") == {}
    assert "deck" not in {field.name for field in dataclasses.fields(CommandContext)}
    for group in group_classes():
        init = group.__init__  # type: ignore[misc]  # the class's own, read on purpose
        given = typing.get_type_hints(init)
        assert "deck" not in inspect.signature(init).parameters, group
        assert Deck not in given.values(), group


def test_the_deck_check_sees_a_handler_that_imports_it() -> None:
    graph = grimp.ImportGraph()
    for module in ("bot", "bot.deck", "bot.commands", "bot.commands.x", "bot.reload", "bot.app"):
        graph.add_module(module)
    graph.add_import(importer="bot.commands.x", imported="bot.reload")
    graph.add_import(importer="bot.reload", imported="bot.deck")
    graph.add_import(importer="bot.app", imported="bot.deck")
    assert reaching(graph, "bot.deck") == {
        "bot.commands.x": ("bot.commands.x", "bot.reload", "bot.deck")
    }


def assigned_attributes(tree: ast.AST) -> list[tuple[int, str]]:
    """Each `x.attr = …` (also `+=`, annotated, unpacked) whose `x` is not `self`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        while targets:
            target = targets.pop(0)
            if isinstance(target, ast.Tuple | ast.List):
                targets.extend(target.elts)
            elif isinstance(target, ast.Starred):
                targets.append(target.value)
            elif isinstance(target, ast.Attribute) and not (
                isinstance(target.value, ast.Name) and target.value.id == "self"
            ):
                found.append((node.lineno, ast.unparse(target)))
    return found


def setattr_calls(tree: ast.AST) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(tree)
        if (isinstance(node, ast.Name) and node.id == "setattr")
        or (isinstance(node, ast.Constant) and node.value == "setattr")
    ]


def test_the_builders_set_no_attribute_after_construction() -> None:
    late = {}
    for path in BUILDERS:
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        if found := assigned_attributes(tree) + [(n, "setattr") for n in setattr_calls(tree)]:
            late[path] = found
    assert late == {}


def test_no_collaborator_is_set_late_anywhere_in_bot() -> None:
    late = []
    for path in sorted((ROOT / "bot").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for line, target in assigned_attributes(tree):
            if target.rpartition(".")[2] in ONCE_LATE:
                late.append(f"{path.relative_to(ROOT)}:{line}: {target}")
    assert late == []
    assert not hasattr(ToolHost, "bind")
    # The direct sender and the links are built from the transports, never added to.
    assert not hasattr(Direct, "add")
    assert not hasattr(TransportLinks, "add")


def test_the_checks_see_a_late_setter() -> None:
    source = (
        "postman.outbox = outbox\n"
        "self.ok = 1\n"
        "setattr(deck, 'links', links)\n"
        "runner.x += 1\n"
        "self.ok, deck.links = 1, links\n"
        "table[deck.name] = 1\n"
    )
    tree = ast.parse(source)
    found = assigned_attributes(tree)
    assert found == [(1, "postman.outbox"), (4, "runner.x"), (5, "deck.links")]
    assert setattr_calls(tree) == [3]


def test_every_field_of_the_deck_exists_at_construction() -> None:
    later = [
        field.name
        for field in dataclasses.fields(Deck)
        if field.default is None or (field.init and "None" in str(field.type))
    ]
    assert later == ["scheduler"]  # None only when [scheduler] enabled = false: given so
    required = [
        f.name
        for f in dataclasses.fields(Deck)
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    assert {"outbox", "links", "writer", "scheduler", "started_at", "tasks"} <= set(required)
    assert not {"dashboard", "metrics"} & {f.name for f in dataclasses.fields(Deck)}
