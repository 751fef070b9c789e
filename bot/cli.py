"""The `agentdeck` command line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from bot.errors import BotError, ConfigError
from roster.errors import RosterError
from storage.errors import StorageError

if TYPE_CHECKING:
    from bot.config import Config
    from bot.deck import Deck
    from bot.types import Transport
    from storage.audit import AuditLog
    from storage.secrets import Vault

T = TypeVar("T")

EXAMPLE = Path(__file__).with_name("config.example.toml")
SWITCH_INTERVAL_SECONDS = 0.0001  # see `run`
PRIVATE_UMASK = 0o077


def _config_path(option: str | None) -> Path | None:
    raw = option or os.environ.get("AGENTDECK_CONFIG")
    return Path(raw).expanduser() if raw else None


def _load(option: str | None) -> Config:
    try:
        return _read_config(option)
    except ConfigError as exc:
        _fail(str(exc), code=2)


def _read_config(option: str | None) -> Config:
    """The config file (or the built-in one), with `--data-dir` over its `data_dir`."""
    return _read_config_file(_config_path(option))


def _read_config_file(path: Path | None) -> Config:
    from bot.config import load_config  # pydantic and the roster: not for `--help`

    config = load_config(path)
    data_dir = click.get_current_context().find_root().obj
    if not data_dir:
        return config
    deck = config.deck.model_copy(update={"data_dir": data_dir})
    return config.model_copy(update={"deck": deck})


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"agentdeck: {message}", err=True)
    sys.exit(code)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="agentdeck", message="%(prog)s %(version)s")
@click.option(
    "--data-dir",
    metavar="DIR",
    help="where the database, keys and logs live (over the config's deck.data_dir)",
)
@click.pass_context
def main(ctx: click.Context, data_dir: str | None) -> None:
    """Operate a roster of AI agents from Telegram, Slack or the console."""
    ctx.obj = data_dir
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


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
    from scheduler.pacing import long_lived

    # Start-up builds what lives as long as the process (the ~100,000 objects of the
    # modules it imports); collecting them again and again while they pile up was a fifth
    # of its CPU. No collections until the deck runs, then they are frozen out of them.
    with contextlib.ExitStack() as starting:
        starting.enter_context(long_lived())
        # What the bot and its agents' commands create is private, as under the systemd
        # unit (UMask=0077); the data directory's files also get explicit modes.
        os.umask(PRIVATE_UMASK)
        config = _load(config_path)
        _setup_logging(config)
        # The event loop shares the GIL with the database writer thread; by default a
        # thread that has it keeps it for up to 5 ms once the other wants it, so the
        # loop's replies waited behind commits. At 0.1 ms the p50 / p95 of a message
        # here went from about 5 / 12 ms to 3-4 / 6-7 ms, at no cost in throughput.
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        try:
            asyncio.run(_serve(config, started=starting.close))
        except (BotError, StorageError, RosterError) as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            pass


async def _serve(config: Config, *, started: Callable[[], None] = lambda: None) -> None:
    from bot.app import open_deck
    from bot.logs import terminal_for_chat
    from bot.transports.console import ConsoleTransport

    stop, hurry = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _on_stop_signal, stop, hurry)
    # SIGHUP re-reads the config; one that comes while starting is applied once running.
    hup = asyncio.Event()
    loop.add_signal_handler(signal.SIGHUP, hup.set)
    async with open_deck(config, hurry=hurry) as (deck, transports):
        started()
        chatting = any(isinstance(t, ConsoleTransport) and not t.scripted for t in transports)
        with terminal_for_chat(config.deck.data_path()) if chatting else contextlib.nullcontext():
            await _until_stopped(deck, transports, stop, hup)


async def _until_stopped(
    deck: Deck, transports: list[Transport], stop: asyncio.Event, hup: asyncio.Event
) -> None:
    from bot.reload import write_snapshot
    from bot.transports.console import ConsoleTransport

    await asyncio.to_thread(write_snapshot, deck.config)  # `agentdeck check` compares
    waits = [asyncio.create_task(stop.wait(), name="signal")]
    waits += [
        asyncio.create_task(t.finished.wait(), name="console-eof")
        for t in transports
        if isinstance(t, ConsoleTransport)
    ]
    reloads = asyncio.create_task(_reload_on_hup(deck, hup), name="sighup")
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    stop.set()  # stopping now, whatever began it: a signal from here on hurries the stop
    for task in [*waits, reloads]:
        task.cancel()
    await asyncio.gather(reloads, return_exceptions=True)


@main.command("mcp")
@config_option
def mcp_command(config_path: str | None) -> None:
    """Serve the deck to an MCP client over stdio (agents, runs, approvals, jobs).

    Calls act as `[mcp] user` and report to `[mcp] chat`, where approval cards wait for
    a press; the console is off (stdin and stdout speak MCP), logs go to the log file.
    """
    os.umask(PRIVATE_UMASK)
    config = _load(config_path)
    if not (config.mcp.user and config.mcp.chat):
        _fail("[mcp] user and chat are needed: who MCP calls act as, and where runs report")
    from bot.config import ConsoleSection

    config = config.model_copy(update={"console": ConsoleSection(enabled=False)})
    _setup_logging(config)
    try:
        asyncio.run(_serve_mcp(config))
    except (BotError, StorageError, RosterError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        pass


async def _serve_mcp(config: Config) -> None:
    from bot.app import open_deck
    from bot.mcp_serve.server import serve_stdio

    stop, hurry = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _on_stop_signal, stop, hurry)
    async with open_deck(config, hurry=hurry) as (deck, _):
        serving = asyncio.create_task(serve_stdio(deck), name="mcp-stdio")
        stopping = asyncio.create_task(stop.wait(), name="signal")
        await asyncio.wait((serving, stopping), return_when=asyncio.FIRST_COMPLETED)
        for task in (serving, stopping):
            task.cancel()
        await asyncio.gather(serving, stopping, return_exceptions=True)


def _on_stop_signal(stop: asyncio.Event, hurry: asyncio.Event) -> None:
    """The first SIGTERM or Ctrl-C stops gracefully; another one cuts the grace short."""
    (hurry if stop.is_set() else stop).set()


async def _reload_on_hup(deck: Deck, hup: asyncio.Event) -> None:
    """One reload per SIGHUP (signals during a reload are folded into the next one)."""
    from bot.reload import reload_on_signal

    while True:
        await hup.wait()
        hup.clear()
        await reload_on_signal(deck)


def _setup_logging(config: Config) -> None:
    from bot.logs import setup_logging

    setup_logging(config.deck.data_path(), config.deck.log_format)


@main.command()
@click.argument("path", default="agentdeck.toml", type=click.Path(dir_okay=False))
def init(path: str) -> None:
    """Set up a config: at a terminal by questions (checked at once), else a commented starter."""
    target = Path(path)
    if target.exists():
        _fail(f"{target} exists already; not overwriting it.")
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        target.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
        click.echo(f"Wrote {target}. Edit it, then: agentdeck run --config {target}")
        return
    from bot.init_questions import interview

    os.umask(PRIVATE_UMASK)  # the vault's key file and database, as under `run`
    try:
        interview(target, _read_config_file(None))
    except (BotError, StorageError) as exc:
        _fail(str(exc))


@main.command()
@config_option
def check(config_path: str | None) -> None:
    """Validate a config file, offline: agents' programs, ports, users; what a reload changes."""
    from bot.findings import CheckStatus, failed
    from bot.preflight import preflight
    from bot.reload import compare, read_snapshot

    config = _load(config_path)
    click.echo(f"{config.source}: OK ({len(config.agents)} agents, {len(config.users)} users)")
    findings = preflight(config)
    for finding in findings:
        if finding.verdict is not CheckStatus.OK:
            click.echo(finding.line())
    running = read_snapshot(config.deck.data_path())
    if running is not None and running.source == config.source:
        changes = compare(running, config).describe()
        click.echo(f"Against the config the bot last ran with: {changes}.")
    if failed(findings):
        sys.exit(1)


@main.command()
@config_option
def doctor(config_path: str | None) -> None:
    """Check config, database, master key, transports and the model API; say what to fix."""
    from bot.doctor import examine, failed

    try:
        config = _read_config(config_path)
    except ConfigError as exc:
        click.echo(f"FAIL  config: {exc}")
        sys.exit(1)
    findings = asyncio.run(examine(config))
    for finding in findings:
        click.echo(finding.line())
    if failed(findings):
        sys.exit(1)


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

    async def verify() -> tuple[str, bool]:
        async with _audit_log(config) as log:
            check = await log.verify()
        bad = check.broken
        if bad is not None:
            return f"audit chain broken at row {bad.id} ({bad.action} by {bad.actor})", False
        return f"audit chain intact: {check.rows} rows checked", True

    verdict, intact = _run_storage(verify())
    if not intact:
        _fail(verdict)
    click.echo(verdict)


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


@main.group()
def secrets() -> None:
    """Encrypted secrets for `secret:NAME` references (values are never shown)."""


@secrets.command("set")
@config_option
@click.argument("name")
def secrets_set(config_path: str | None, name: str) -> None:
    """Store a secret; the value comes from a hidden prompt, or stdin when piped."""
    config = _load(config_path)
    if sys.stdin.isatty():
        value = click.prompt(f"Value of {name}", hide_input=True, confirmation_prompt=True)
    else:
        value = sys.stdin.read().rstrip("\r\n")

    async def store() -> None:
        async with _vault(config) as (vault, audit):
            await vault.set(name, value, by=_cli_user())
            audit.record(_cli_user(), "secret.set", name, via="cli")

    _run_storage(store())
    click.echo(f"Stored {name}; use it as secret:{name} (and list it in the agent's secrets).")


@secrets.command("list")
@config_option
def secrets_list(config_path: str | None) -> None:
    """Show names, who set them and when; never values."""
    config = _load(config_path)

    async def listing() -> list[str]:
        async with _vault(config, load=False) as (vault, _audit):
            rows = await vault.listing()
        return [f"{r.name}  set by {r.set_by}  {r.set_at:%Y-%m-%d %H:%M:%S} UTC" for r in rows]

    click.echo("\n".join(_run_storage(listing())) or "no secrets stored")


@secrets.command("delete")
@config_option
@click.argument("name")
def secrets_delete(config_path: str | None, name: str) -> None:
    """Delete a secret (works without the master key, e.g. for a damaged row)."""
    config = _load(config_path)

    async def remove() -> None:
        async with _vault(config, load=False) as (vault, audit):
            await vault.delete(name)
            audit.record(_cli_user(), "secret.deleted", name, via="cli")

    _run_storage(remove())
    click.echo(f"Deleted {name}.")


@secrets.command("rotate-key")
@config_option
def secrets_rotate_key(config_path: str | None) -> None:
    """Re-encrypt every secret under a new master key; the old key is kept until done."""
    config = _load(config_path)

    async def rotate() -> str:
        async with _vault(config) as (vault, audit):
            keys = await vault.rotate()
            count = len(vault.names())
            audit.record(_cli_user(), "secret.key_rotated", keys.where, secrets=count)
        if keys.path is None:
            return (
                f"Re-encrypted {count} secret(s) with the first key of {keys.where}; "
                "now remove the other key(s) from it."
            )
        return f"Re-encrypted {count} secret(s) with a new key in {keys.where}; old key removed."

    click.echo(_run_storage(rotate()))


@secrets.command("new-key")
def secrets_new_key() -> None:
    """Print a fresh master key (for AGENTDECK_MASTER_KEY)."""
    from storage.secrets import new_key

    click.echo(new_key())


def _cli_user() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


@contextlib.asynccontextmanager
async def _vault(config: Config, *, load: bool = True) -> AsyncIterator[tuple[Vault, AuditLog]]:
    """The vault and the audit log on the configured database, for one CLI command."""
    from storage.audit import AuditLog
    from storage.clock import SystemClock
    from storage.db import Database
    from storage.secrets import Vault
    from storage.writer import WriteBehind

    clock = SystemClock()
    async with Database(config.deck.database()) as db, WriteBehind(db) as writer:
        vault = Vault(db=db, data_dir=config.deck.data_path(), clock=clock)
        if load:
            await vault.load()
        yield vault, AuditLog(db=db, writer=writer, clock=clock, redact=vault.redact)
