"""The credentials a config makes the bot read from its environment, told to the scrubber.

At start (and at each reload), before any message is handled, every `env:` reference
the config holds is read and its value given to the deck's one scrubber: the
transports' tokens and signing secrets, the model providers' API keys, the webhook
triggers' secrets, the `env:` values of agents' `env` tables (whether or not that agent
ever runs), and a plain `[telegram] secret_token`, or the one derived from the bot
token when none is set (`derived_webhook_secret`: whoever holds it can post updates to
the webhook). From then on they are scrubbed from chat, logs, stored runs and audit
rows exactly as vault values are (`secret:` references are vault values already).

Not a credential: an agent's `env` entry that names a variable every child inherits
anyway (`HOME = "env:HOME"`): scrubbing it would blank every path in every output.
A value too short to be told from ordinary words is not scrubbed, with a warning.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator

from bot.config import Config
from roster.children import inherited
from roster.spec import CommandAgentSpec
from storage.scrubber import MIN_VALUE_CHARS, Scrubber

log = logging.getLogger(__name__)

DERIVED_WEBHOOK_SECRET = "derived:telegram.secret_token"  # noqa: S105 (a label, not a value)


def derived_webhook_secret(token: str) -> str:
    """The Telegram webhook's secret token when the config sets none.

    Derived from the bot token, not random: every process of this bot behind one webhook
    URL must accept what Telegram sends, and only the token's holder knows it.
    """
    return hashlib.sha256(b"agentdeck webhook secret:" + token.encode()).hexdigest()


def credential_settings(config: Config) -> Iterator[tuple[str, str]]:
    """(key path, setting) of every setting that may hold or name a credential."""
    yield "llm.api_key", config.llm.api_key
    for name, provider in config.llm.providers.items():
        yield f"llm.providers.{name}.api_key", provider.api_key
    yield "mcp.token", config.mcp.token
    for trigger in config.triggers:
        yield f"triggers.{trigger.name}.secret", trigger.secret
    if config.telegram is not None:
        yield "telegram.token", config.telegram.token
        yield "telegram.secret_token", config.telegram.secret_token
    if config.slack is not None:
        for key in ("bot_token", "app_token", "signing_secret"):
            yield f"slack.{key}", str(getattr(config.slack, key))
    yield from _child_settings(config)


def _child_settings(config: Config) -> Iterator[tuple[str, str]]:
    """The env of command agents and MCP servers, and MCP servers' headers (an `env:`
    reference the children inherit anyway is no credential of ours)."""
    for agent in config.agents:
        if isinstance(agent, CommandAgentSpec):
            for key, value in agent.env.items():
                if not (value.startswith("env:") and inherited(value[4:])):
                    yield f"agents.{agent.name}.env.{key}", value
    for server in config.mcp_servers:
        for key, value in server.env.items():
            if not (value.startswith("env:") and inherited(value[4:])):
                yield f"mcp_servers.{server.name}.env.{key}", value
        for key, value in server.headers.items():
            yield f"mcp_servers.{server.name}.headers.{key}", value


def learn_credentials(config: Config, scrubber: Scrubber) -> None:
    """Give the scrubber the value of every credential the config reads from `env:`."""
    for where, setting in credential_settings(config):
        if setting.startswith("env:"):
            label, value = setting, os.environ.get(setting[4:])
        elif where == "telegram.secret_token" and setting and not setting.startswith("secret:"):
            label, value = where, setting  # a plain value in the config file
        else:
            continue  # vault values are known already; plain agent env values are settings
        if value is None:
            continue  # whoever uses it says so, when it is used
        if not scrubber.add(label, value):
            log.warning(
                "%s: the value of %s is shorter than %d characters (blanks aside), so it is "
                "not scrubbed from chat, logs and stored runs; use a real credential",
                where,
                label,
                MIN_VALUE_CHARS,
            )
    _learn_derived(config, scrubber)


def _learn_derived(config: Config, scrubber: Scrubber) -> None:
    """The webhook secret derived from the bot token, when no secret_token is set."""
    if config.telegram is None or config.telegram.secret_token:
        return
    token = config.telegram.token
    if token.startswith("env:"):
        token = os.environ.get(token[4:], "")
    elif token.startswith("secret:"):
        token = scrubber.value(token[7:]) or ""  # the vault is loaded before this runs
    if token:
        scrubber.add(DERIVED_WEBHOOK_SECRET, derived_webhook_secret(token))
