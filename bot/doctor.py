"""`agentdeck doctor`: check what a start needs, one line per check, and say what to fix.

Checks, in order: the config (already loaded by the caller), what `bot.preflight`
finds offline (agents' programs and directories, ports, users), the database
(reachable, which schema), the master key and the stored secrets (do they decrypt?),
each configured transport's credentials (Telegram `getMe`, Slack `auth.test`), the
model endpoint (`GET /models`) and each MCP server (started as the deck would start
it, its tools listed, stopped again). Nothing else is started, created or migrated;
every network call has a deadline. A check that cannot run because an earlier one failed says so.
No model API key is a warning: the bot runs without one, its llm agents do not.
"""

from __future__ import annotations

import asyncio
import dataclasses
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from bot.config import Config
from bot.errors import BotError
from bot.findings import CheckStatus, Finding, failed, ok
from bot.preflight import preflight
from bot.providers import model_settings, provider_settings
from roster.errors import RosterError
from roster.mcp.pool import McpPool
from roster.model_client import ModelClient, ModelSettings
from roster.providers import DEFAULT, ModelName, parse_model
from roster.refs import NoSecrets, SecretSource
from roster.spec import LLMAgentSpec
from storage.clock import SystemClock
from storage.db import DATABASE_ERRORS, Database
from storage.errors import StorageError
from storage.migrations import HEAD_REVISION
from storage.secrets import KeySource, MasterKeys, Vault, read_keys

CHECK_SECONDS = 15.0
MCP_TOOLS_SHOWN = 12


__all__ = ["CheckStatus", "Finding", "examine", "failed"]


async def examine(config: Config) -> list[Finding]:
    """Run every check against this config; the findings in order."""
    findings = [ok("config", f"{config.source}: {_counts(config)}")]
    findings += await asyncio.to_thread(preflight, config)  # stats files, binds sockets
    db = Database(config.deck.database())
    try:
        schema = await _database(db, config)
        findings.append(schema.finding)
        vault, keys = await _keys(db if schema.readable else None, config)
        findings.append(keys)
        secrets: SecretSource = vault or NoSecrets()
        findings += [await _guarded(name, check(secrets)) for name, check in _transports(config)]
        findings.append(await _guarded("llm", _llm(config, secrets)))
        for name in config.llm.providers:
            findings.append(await _guarded(f"llm.{name}", _provider(config, secrets, name)))
        findings += [
            await _guarded(f"mcp {server.name}", _mcp(config, server.name, secrets))
            for server in config.mcp_servers
        ]
    finally:
        await db.engine.dispose()
    return findings


def _counts(config: Config) -> str:
    return f"{len(config.agents)} agents, {len(config.users)} users, valid"


async def _guarded(check: str, work: Awaitable[Finding]) -> Finding:
    """Await one check under its deadline; whatever goes wrong becomes its FAIL line."""
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            return await work
    except TimeoutError:
        return Finding(check, CheckStatus.FAIL, f"no answer within {CHECK_SECONDS:g} s")
    except (BotError, RosterError, StorageError) as exc:
        return Finding(check, CheckStatus.FAIL, str(exc))
    except Exception as exc:  # a diagnosis must report, not crash, on what it did not foresee
        return Finding(check, CheckStatus.FAIL, f"{type(exc).__name__}: {exc}")


# --- database ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Schema:
    finding: Finding
    readable: bool  # tables exist: the vault can be read


async def _database(db: Database, config: Config) -> Schema:
    where = db.display_url
    if db.is_sqlite and not await asyncio.to_thread(Path(db.engine.url.database or "").exists):
        return Schema(
            ok("database", f"{where}: not created yet; the first start creates it"), False
        )
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            revision = await db.current_revision()
    except (*DATABASE_ERRORS, TimeoutError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = "[deck] database_url" if config.deck.database_url else "[deck] data_dir"
        return Schema(
            Finding("database", CheckStatus.FAIL, f"{where}: {reason} (check {hint})"), False
        )
    return Schema(_schema_finding(where, revision), revision is not None)


def _schema_finding(where: str, revision: str | None) -> Finding:
    if revision is None:
        return ok("database", f"{where}: empty; the first start creates the schema")
    if revision == HEAD_REVISION:
        return ok("database", f"{where}: schema {revision} (current)")
    if revision < HEAD_REVISION:
        detail = f"{where}: schema {revision}; the next start migrates it to {HEAD_REVISION}"
        return Finding("database", CheckStatus.WARN, detail)
    detail = (
        f"{where}: schema {revision} is newer than this agentdeck knows ({HEAD_REVISION}); "
        "upgrade agentdeck or point it at the right database"
    )
    return Finding("database", CheckStatus.FAIL, detail)


# --- master key and secrets ------------------------------------------------------------


async def _keys(db: Database | None, config: Config) -> tuple[Vault | None, Finding]:
    data_dir = config.deck.data_path()
    try:
        keys = await asyncio.to_thread(read_keys, data_dir, create=False)
        vault = (
            None
            if db is None
            else await Vault(db=db, data_dir=data_dir, clock=SystemClock()).load()
        )
        stored = None if vault is None else len(vault.names())
        return vault, await asyncio.to_thread(_key_finding, keys, stored)  # stats the key file
    except (StorageError, *DATABASE_ERRORS) as exc:
        return None, Finding("secrets", CheckStatus.FAIL, str(exc))


def _key_finding(keys: MasterKeys | None, stored: int | None) -> Finding:
    count = "" if stored is None else f"; {stored} stored secret(s) decrypt"
    if keys is None:
        return ok("secrets", "no master key yet (the first `secrets set` creates one)" + count)
    if keys.path is not None and keys.source is KeySource.FILE:
        mode = stat.S_IMODE(keys.path.stat().st_mode)
        if mode & 0o077:
            detail = f"{keys.path} is readable by other users (mode {mode:03o}): chmod 600 it"
            return Finding("secrets", CheckStatus.WARN, detail)
    return ok("secrets", f"master key from {keys.where}{count}")


# --- transports ----------------------------------------------------------------------

Probe = Callable[[SecretSource], Awaitable[Finding]]


def _transports(config: Config) -> list[tuple[str, Probe]]:
    """A probe per configured transport; each imports its SDK only when it runs."""
    probes: list[tuple[str, Probe]] = []
    if config.telegram is not None:
        settings = config.telegram

        async def telegram(secrets: SecretSource) -> Finding:
            from bot.transports.telegram.probe import probe

            return ok("telegram", await probe(settings, secrets))

        probes.append(("telegram", telegram))
    if config.slack is not None:
        slack_settings = config.slack

        async def slack(secrets: SecretSource) -> Finding:
            from bot.transports.slack.probe import probe

            return ok("slack", await probe(slack_settings, secrets))

        probes.append(("slack", slack))
    return probes


# --- MCP servers ---------------------------------------------------------------------


async def _mcp(config: Config, server: str, secrets: SecretSource) -> Finding:
    """Start the server as the deck would (its env, its references), list its tools, stop it."""
    pool = McpPool(
        config.mcp_servers, policies=config.tool_policy, secrets=secrets, redact=secrets.redact
    )
    try:
        tools = sorted(await pool.tools(server))
    finally:
        await pool.close()
    shown = ", ".join(tools[:MCP_TOOLS_SHOWN]) + (" …" if len(tools) > MCP_TOOLS_SHOWN else "")
    transport = pool.spec(server).transport
    return ok(f"mcp {server}", f"{transport}: started; {len(tools)} tools: {shown or 'none'}")


# --- model endpoint ------------------------------------------------------------------


async def _llm(config: Config, secrets: SecretSource) -> Finding:
    if not any(isinstance(a, LLMAgentSpec) for a in config.agents):
        return Finding("llm", CheckStatus.SKIP, "no llm agents configured")
    wanted = _wanted(config, DEFAULT)
    settings = model_settings(config, secrets)
    if not settings.api_key:
        names = ", ".join(a.name for a in config.agents if isinstance(a, LLMAgentSpec))
        detail = (
            f"no API key, so {names} cannot answer (the rest of the bot runs): "
            "set OPENAI_API_KEY or [llm] api_key"
        )
        return Finding("llm", CheckStatus.WARN, detail)
    return await _offered("llm", settings, settings.base_url or "api.openai.com", wanted)


async def _provider(config: Config, secrets: SecretSource, name: str) -> Finding:
    """One `[llm.providers.<name>]`: does it answer, and list the models asked of it?"""
    check = f"llm.{name}"
    settings = provider_settings(name, config.llm.providers[name], config, secrets)
    if not settings.api_key:
        detail = f"its api_key names nothing set, so models on {name} cannot answer"
        return Finding(check, CheckStatus.WARN, detail)
    return await _offered(check, settings, str(settings.base_url), _wanted(config, name))


async def _offered(check: str, settings: ModelSettings, where: str, wanted: set[str]) -> Finding:
    # One quick try: the doctor reports a failure, the bot's own retries would hide it.
    quick = dataclasses.replace(settings, max_retries=0, timeout=min(settings.timeout, 10.0))
    client = ModelClient(quick)
    try:
        offered = set(await client.models())
    finally:
        await client.close()
    return _models_finding(check, where, wanted, offered)


def _wanted(config: Config, provider: str) -> set[str]:
    """The models the agents ask of one provider: their own, their fallbacks and choices."""
    known = list(config.llm.providers)
    wanted: set[str] = set()
    for agent in config.agents:
        if not isinstance(agent, LLMAgentSpec):
            continue
        names = [agent.model, *([agent.fallback_model] if agent.fallback_model else [])]
        parsed = [ModelName(agent.provider, name) for name in names]
        parsed += [parse_model(t, own=agent.provider, providers=known) for t in agent.fallback]
        wanted |= {name.model for name in parsed if name.provider == provider}
    return wanted


def _models_finding(check: str, where: str, wanted: set[str], offered: set[str]) -> Finding:
    missing = sorted(wanted - offered)
    if missing:
        detail = (
            f"{where} answers, but does not list {', '.join(missing)}: check the agents' "
            "model names (some gateways list fewer models than they serve)"
        )
        return Finding(check, CheckStatus.WARN, detail)
    among = f", {', '.join(sorted(wanted))} among them" if wanted else ""
    return ok(check, f"{where}: {len(offered)} models offered{among}")
