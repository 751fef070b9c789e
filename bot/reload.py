"""Config reload without a restart (SIGHUP or /reload): validate first, then swap in place.

The file named by `Config.source` is read and validated; an invalid file changes
nothing and the answer is its one-line error. A valid one is applied to the
services every holder shares (`Roster.replace`, `Access.replace`, `Routing.replace`,
`Budgets.replace`, then `deck.config`): agents, tools and prices, users and roles,
bindings, the default agent, budgets. Everything new is built before the first swap,
so a message arriving during a reload sees the old set or the new one, never a mix.
A run that started before keeps the agent object it holds.

What only a restart can change (transports, database, data directory, model endpoint,
scheduler and jobs, dashboard, metrics, some `[deck]` keys) is kept as it runs, and
the answer says that a restart is needed for it. `deck.config` therefore always
describes what is in effect, so the next reload compares against the truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from bot.config import Config, load_config, parse_config
from bot.credentials import learn_credentials
from bot.deck import Deck
from bot.delivery.outbox import ADMIN_SUBJECT
from bot.errors import ConfigError
from bot.intake.routing import router_for
from bot.text import rich
from bot.toolhost import ToolHost, toolbox_for
from bot.types import Outgoing
from roster.pricing import PriceTable
from roster.roster import Roster

log = logging.getLogger(__name__)

RELOADED = "config.reloaded"  # audit actions
REFUSED = "config.reload_refused"
SNAPSHOT = "config.running.json"  # in the data directory: what `agentdeck check` compares with

# Sections and [deck] keys read once at start: a reload keeps them as they run.
RESTART_SECTIONS = (
    "telegram",
    "slack",
    "console",
    "llm",
    "scheduler",
    "jobs",
    "dashboard",
    "metrics",
    "triggers",  # their routes are mounted at start
    "webhooks",
)
RESTART_DECK_KEYS = (
    "data_dir",
    "database_url",
    "admin_chat",
    "rate_limit_per_minute",
    "breaker_failures",
    "memory_turns",
    "log_format",
    "process_heartbeat_seconds",
    "process_stale_seconds",
)


@dataclass(frozen=True, slots=True)
class Changes:
    applied: tuple[str, ...]  # what changed and is now in effect
    restart: tuple[str, ...]  # what changed and waits for a restart

    def describe(self) -> str:
        if not self.applied and not self.restart:
            return "no changes"
        parts = [f"applied: {', '.join(self.applied)}"] if self.applied else []
        if self.restart:
            parts.append(f"needs a restart to take effect: {', '.join(self.restart)}")
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class Reloaded:
    ok: bool
    text: str  # one line, for the chat, the log and the terminal
    changes: Changes | None = None


def compare(running: Config, new: Config) -> Changes:
    """What differs between two configs, split into live-applicable and restart-only."""
    applied: list[str] = []
    restart: list[str] = []
    for name in Config.model_fields:
        if name in ("source", "deck"):
            continue
        old_value, new_value = getattr(running, name), getattr(new, name)
        if _dump(old_value) == _dump(new_value):
            continue
        target = restart if name in RESTART_SECTIONS else applied
        target.append(_agents_delta(running, new) if name == "agents" else name)
    for key in type(running.deck).model_fields:
        if getattr(running.deck, key) != getattr(new.deck, key):
            (restart if key in RESTART_DECK_KEYS else applied).append(f"deck.{key}")
    return Changes(tuple(applied), tuple(restart))


def in_effect(running: Config, new: Config) -> Config:
    """The new config, with what only a restart can change kept as it runs."""
    deck = new.deck.model_copy(update={k: getattr(running.deck, k) for k in RESTART_DECK_KEYS})
    kept = {name: getattr(running, name) for name in RESTART_SECTIONS}
    return new.model_copy(update={**kept, "deck": deck})


async def reload_config(deck: Deck, *, by: str) -> Reloaded:
    """Re-read `deck.config.source`; apply it if valid, else change nothing. Audited."""
    source = deck.config.source
    try:
        new = await asyncio.to_thread(_read, source)
    except ConfigError as exc:
        deck.audit.record(by, REFUSED, source, error=str(exc)[:500])
        return Reloaded(False, f"Not reloaded, nothing changed: {exc}")
    changes = compare(deck.config, new)
    await apply(deck, in_effect(deck.config, new))
    await asyncio.to_thread(write_snapshot, deck.config)
    deck.audit.record(
        by, RELOADED, source, applied=list(changes.applied), restart=list(changes.restart)
    )
    return Reloaded(True, f"Reloaded {source}: {changes.describe()}.", changes)


def write_snapshot(config: Config) -> None:
    """Record the config in effect in the data directory, for `agentdeck check` to compare.

    Blocking file I/O: call it in a thread. Mode 0600, replaced atomically: it holds
    what the config file holds (references, not secret values, but still private).
    """
    path = config.deck.data_path() / SNAPSHOT
    body = json.dumps({"source": config.source, "config": config.model_dump(mode="json")})
    staging = path.with_name(path.name + ".new")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o600)  # a leftover staging file may have had a wider mode
        out.write(body)
    os.replace(staging, path)


def read_snapshot(data_dir: Path) -> Config | None:
    """The config the bot last ran with, if it left a readable snapshot."""
    try:
        data = json.loads((data_dir / SNAPSHOT).read_text(encoding="utf-8"))
        return parse_config(data["config"], source=str(data["source"]))
    except (OSError, ValueError, KeyError, TypeError, ConfigError):
        return None


def _read(source: str) -> Config:
    if source == Config.model_fields["source"].default:
        raise ConfigError(
            f"{source}: not a config file on disk (start with --config FILE to reload one)"
        )
    return load_config(Path(source))


async def apply(deck: Deck, config: Config) -> None:
    """Build the new roster, tools and router, then swap them in with no await between."""
    learn_credentials(config, deck.vault.scrubber)  # before any new agent can print one
    host = ToolHost(
        roster=deck.roster,
        runner=deck.runner,
        postman=deck.postman,
        audit=deck.audit,
        db=deck.db,
        clock=deck.clock,
        redact=deck.vault.redact,
        timezone=config.deck.timezone,
        scheduler=deck.scheduler,
    )
    prices = PriceTable(config.prices)
    tools = toolbox_for(config, notes=deck.memory, host=host)
    agents = Roster.build(
        config.agents,
        providers=deck.providers,
        tools=tools,
        secrets=deck.vault,
        prices=prices,
        bindings=config.secrets,
        choices=deck.chat_models,
        mcp=deck.mcp,
    )
    router = router_for(config, providers=deck.providers, prices=prices)
    await deck.brakes.budgets.replace(config.budgets)  # may seed from the database first
    deck.roster.replace(agents)
    deck.mcp.replace(config.mcp_servers, config.tool_policy)
    deck.access.replace(
        config.users, console_user=config.console.user, chat_roles=config.chat_roles()
    )
    deck.routing.replace(config, router)
    deck.config = config


async def reload_on_signal(deck: Deck) -> None:
    """SIGHUP: reload, log the outcome and tell the admin chat."""
    result = await reload_config(deck, by="signal:SIGHUP")
    (log.info if result.ok else log.warning)("SIGHUP: %s", result.text)
    admin = deck.config.deck.admin_chat
    if admin and deck.postman.knows(admin):
        key = f"reload:{deck.clock.now().isoformat()}"
        with contextlib.suppress(Exception):  # the log line above is the record
            await deck.postman.keep(
                key, Outgoing(chat=admin, text=rich(result.text)), subject=ADMIN_SUBJECT
            )


def _dump(value: object) -> object:
    if isinstance(value, tuple):
        return [_dump(item) for item in value]
    if isinstance(value, dict):
        return {key: _dump(item) for key, item in value.items()}
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) else value


def _agents_delta(running: Config, new: Config) -> str:
    """`agents (+ops, -old, ~writer)`: added, removed, changed."""
    before = {a.name: _dump(a) for a in running.agents}
    after = {a.name: _dump(a) for a in new.agents}
    marks = [f"+{n}" for n in after if n not in before]
    marks += [f"-{n}" for n in before if n not in after]
    marks += [f"~{n}" for n in after if n in before and before[n] != after[n]]
    return f"agents ({', '.join(marks)})" if marks else "agents"
