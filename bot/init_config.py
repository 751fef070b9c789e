"""The config file `agentdeck init` writes from a person's answers.

Only references go into the file (`secret:NAME`: the values are in the vault), every
value is written as a TOML string through JSON's escaping (a subset of TOML's), and
the text is parsed back by the real config loader before it is written: an answer can
add no key, section or user of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from bot.config import Config, parse_config

TELEGRAM_TOKEN = "telegram_token"  # noqa: S105 (secret names, not secrets)
SLACK_BOT_TOKEN = "slack_bot_token"  # noqa: S105
SLACK_APP_TOKEN = "slack_app_token"  # noqa: S105
LLM_API_KEY = "llm_api_key"

HOST_AGENT = """
[[agents]]
name = "host"
kind = "command"
description = "Read-only host checks: uptime, disk, memory"
actions = { uptime = ["uptime"], disk = ["df", "-h"], memory = ["free", "-m"] }
timeout = 20
"""


@dataclass(frozen=True, slots=True)
class Answers:
    """What the person chose; base URLs empty where they took the default."""

    telegram: bool = False
    telegram_base_url: str = ""
    slack: bool = False
    slack_base_url: str = ""
    admins: tuple[str, ...] = ()  # "telegram:123", "slack:U123"
    llm: bool = False
    llm_base_url: str = ""
    model: str = ""


def toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=True)


def render(answers: Answers) -> str:
    """The config text for these answers (checked by `validated`)."""
    parts = [
        "# Written by `agentdeck init`. Every key, with its default and what it does:",
        "# config.example.toml. Credentials are in the vault (`agentdeck secrets list`).",
        "",
        "[deck]",
        f"default_agent = {toml_string('assistant' if answers.llm else 'host')}",
    ]
    if answers.telegram:
        parts += ["", "[telegram]", f'token = "secret:{TELEGRAM_TOKEN}"']
        parts += _base_url(answers.telegram_base_url)
    if answers.slack:
        parts += ["", "[slack]", f'bot_token = "secret:{SLACK_BOT_TOKEN}"']
        parts += [f'app_token = "secret:{SLACK_APP_TOKEN}"']
        parts += _base_url(answers.slack_base_url)
    if answers.llm:
        parts += ["", "[llm]", f'api_key = "secret:{LLM_API_KEY}"']
        parts += _base_url(answers.llm_base_url)
    for admin in answers.admins:
        parts += ["", "[[users]]", f"id = {toml_string(admin)}", 'role = "admin"']
    parts.append(HOST_AGENT.rstrip())
    if answers.llm:
        parts += [
            "",
            "[[agents]]",
            'name = "assistant"',
            'kind = "llm"',
            f"model = {toml_string(answers.model)}",
            'description = "Answers questions"',
        ]
    return "\n".join(parts) + "\n"


def _base_url(url: str) -> list[str]:
    return [f"base_url = {toml_string(url)}"] if url else []


def validated(text: str, source: str) -> Config:
    """The config this text is, by the loader `agentdeck run` uses (ConfigError if none)."""
    import tomllib

    return parse_config(tomllib.loads(text), source=source)
