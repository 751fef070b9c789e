"""The `agentdeck` command line."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

import click

from bot.config import Config, load_config
from bot.errors import BotError, ConfigError
from roster.errors import RosterError
from storage.errors import StorageError

T = TypeVar("T")

EXAMPLE = Path(__file__).with_name("config.example.toml")


def _config_path(option: str | None) -> Path | None:
    raw = option or os.environ.get("AGENTDECK_CONFIG")
    return Path(raw).expanduser() if raw else None


def _load(option: str | None) -> Config:
    try:
        return load_config(_config_path(option))
    except ConfigError as exc:
        _fail(str(exc), code=2)


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"agentdeck: {message}", err=True)
    sys.exit(code)


@click.group()
def main() -> None:
    """Operate a roster of AI agents from Telegram, Slack or the console."""


config_option = click.option(
    "--config",
    "config_path",
    metavar="PATH",
    help="config file (default: $AGENTDECK_CONFIG, else built in)",
)


@main.command()
@config_option
def run(config_path: str | None) -> None:
    """Run the bot until stopped (Ctrl-C, SIGTERM, or end of console input)."""
    config = _load(config_path)
    _setup_logging(config)
    try:
        asyncio.run(_serve(config))
    except (BotError, StorageError, RosterError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        pass


async def _serve(config: Config) -> None:
    from bot.app import open_deck
    from bot.transports.console import ConsoleTransport

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with open_deck(config) as (_deck, transports):
        waits = [asyncio.create_task(stop.wait(), name="signal")]
        waits += [
            asyncio.create_task(t.finished.wait(), name="console-eof")
            for t in transports
            if isinstance(t, ConsoleTransport)
        ]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()


def _setup_logging(config: Config) -> None:
    data = config.deck.data_path()
    data.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(data / "agentdeck.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    console.setFormatter(logging.Formatter("agentdeck: %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler, console], force=True)
    for noisy in ("httpx", "httpcore", "aiosqlite", "telegram.ext.Updater"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@main.command()
@click.argument("path", default="agentdeck.toml", type=click.Path(dir_okay=False))
def init(path: str) -> None:
    """Write a starter config file (refuses to overwrite one)."""
    target = Path(path)
    if target.exists():
        _fail(f"{target} exists already; not overwriting it.")
    target.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    click.echo(f"Wrote {target}. Edit it, then: agentdeck run --config {target}")


@main.command()
@config_option
def check(config_path: str | None) -> None:
    """Validate a config file without starting anything."""
    config = _load(config_path)
    click.echo(f"{config.source}: OK ({len(config.agents)} agents, {len(config.users)} users)")


@main.group()
def audit() -> None:
    """Read and verify the audit log."""


@audit.command("tail")
@config_option
@click.option("-n", "count", default=20, show_default=True, help="how many events")
def audit_tail(config_path: str | None, count: int) -> None:
    """Show the newest audit events."""
    config = _load(config_path)

    async def tail() -> None:
        async with _audit_log(config) as log:
            for event in await log.tail(count):
                detail = " ".join(f"{k}={v}" for k, v in event.detail.items())
                when = f"{event.at:%Y-%m-%d %H:%M:%S}"
                click.echo(f"{when} {event.actor} {event.action} {event.subject} {detail}".rstrip())

    _run_storage(tail())


@audit.command("verify")
@config_option
def audit_verify(config_path: str | None) -> None:
    """Check the hash chain; report the first tampered row."""
    config = _load(config_path)

    async def verify() -> str:
        async with _audit_log(config) as log:
            bad = await log.verify()
        return (
            ""
            if bad is None
            else f"audit chain broken at row {bad.id} ({bad.action} by {bad.actor})"
        )

    broken = _run_storage(verify())
    if broken:
        _fail(broken)
    click.echo("audit chain intact")


def _audit_log(config: Config):  # type: ignore[no-untyped-def]
    import contextlib

    from storage.audit import AuditLog
    from storage.clock import SystemClock
    from storage.db import Database
    from storage.writer import WriteBehind

    @contextlib.asynccontextmanager
    async def opened():  # type: ignore[no-untyped-def]
        async with Database(config.deck.database()) as db, WriteBehind(db) as writer:
            yield AuditLog(db=db, writer=writer, clock=SystemClock())

    return opened()


def _run_storage(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except StorageError as exc:
        _fail(str(exc))
