"""The config file: TOML parsed into one validated, typed object.

Errors name the file and the key path (`agents[2].timeout`), never a traceback.
"""

from __future__ import annotations

import os
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.errors import ConfigError
from roster.spec import AgentSpec, CommandAgentSpec, LLMAgentSpec, Policy

DEFAULT_DATA_DIR = "~/.local/share/agentdeck"
CONSOLE_USER = "console:local"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"

    @property
    def rank(self) -> int:
        return {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


class DeckSection(Section):
    data_dir: str = ""
    database_url: str = ""
    default_agent: str = ""
    timezone: str = "UTC"
    admin_chat: str = ""
    memory_turns: int = Field(default=10, ge=0, le=200)
    max_message_chars: int = Field(default=20_000, ge=100)

    def data_path(self) -> Path:
        raw = self.data_dir or os.environ.get("AGENTDECK_DATA_DIR") or DEFAULT_DATA_DIR
        return Path(raw).expanduser()

    def database(self) -> str:
        from storage.db import sqlite_url

        return self.database_url or sqlite_url(self.data_path())


class LLMSection(Section):
    base_url: str = ""
    api_key: str = "env:OPENAI_API_KEY"
    timeout: float = Field(default=60, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)


class UserEntry(Section):
    id: str = Field(pattern=r"^[a-z]+:.+$")
    role: Role
    name: str = ""


class Binding(Section):
    chat: str = Field(pattern=r"^[a-z]+:.+$")
    agent: str


class ConsoleSection(Section):
    # "auto": on when no other transport is configured.
    enabled: bool | Literal["auto"] = "auto"
    user: str = CONSOLE_USER


class TelegramMode(StrEnum):
    POLLING = "polling"
    WEBHOOK = "webhook"


class TelegramSection(Section):
    token: str = Field(pattern=r"^(env|secret):.+$")
    mode: TelegramMode = TelegramMode.POLLING
    base_url: str = ""
    base_file_url: str = ""
    webhook_url: str = ""
    listen: str = "127.0.0.1"
    port: int = Field(default=8443, ge=1, le=65535)
    path: str = "/telegram"
    secret_token: str = ""
    max_connections: int = Field(default=64, ge=1, le=1024)

    @model_validator(mode="after")
    def _webhook_needs_url(self) -> TelegramSection:
        if self.mode is TelegramMode.WEBHOOK and not self.webhook_url:
            raise ValueError("webhook mode needs webhook_url")
        return self


class Config(Section):
    deck: DeckSection = DeckSection()
    llm: LLMSection = LLMSection()
    agents: tuple[AgentSpec, ...] = ()
    users: tuple[UserEntry, ...] = ()
    bindings: tuple[Binding, ...] = ()
    console: ConsoleSection = ConsoleSection()
    telegram: TelegramSection | None = None
    source: str = Field(default="(embedded default)", exclude=True)

    @model_validator(mode="after")
    def _names_fit_together(self) -> Config:
        names = [agent.name for agent in self.agents]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"agent names must be unique; repeated: {', '.join(duplicates)}")
        for where, name in self._agent_references():
            if name not in names:
                raise ValueError(f"{where} names agent {name!r}, which is not in [[agents]]")
        return self

    def _agent_references(self) -> list[tuple[str, str]]:
        refs = [(f"bindings[{i}].agent", b.agent) for i, b in enumerate(self.bindings)]
        if self.deck.default_agent:
            refs.append(("deck.default_agent", self.deck.default_agent))
        return refs

    def console_enabled(self) -> bool:
        if self.console.enabled == "auto":
            return self.telegram is None
        return bool(self.console.enabled)


def load_config(path: Path | None) -> Config:
    """Read and validate the config at `path`, or the embedded default when None."""
    if path is None:
        return embedded_default()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file (create one with `agentdeck init {path}`)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, source=str(path))


def parse_config(data: dict[str, object], source: str) -> Config:
    try:
        return Config.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, data)) from None


def _describe(exc: ValidationError, source: str, data: dict[str, object]) -> str:
    first = exc.errors()[0]
    path = _key_path(first["loc"], data)
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key (check the spelling against config.example.toml)"
    where = f"{path}: " if path else ""
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{source}: {where}{message}{more}"


def _key_path(loc: tuple[int | str, ...], data: object) -> str:
    """`('agents', 0, 'command', 'timeout')` -> `agents[0].timeout` (drop union tags)."""
    parts: list[str] = []
    node = data
    skipped_tag = False
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
            node = node[item] if isinstance(node, list) and item < len(node) else None
            skipped_tag = False
            continue
        if isinstance(node, dict) and node.get("kind") == item and not skipped_tag:
            skipped_tag = True
            continue  # the discriminator's tag (`kind`), not a key the user wrote
        parts.append(item)
        node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts)


def embedded_default() -> Config:
    """The roster that runs with no config: works offline, shows what needs setting up."""
    gated = Policy(approval="always")
    agents = (
        CommandAgentSpec(
            kind="command",
            name="host",
            description="Read-only host checks: uptime, disk, memory",
            actions={
                "uptime": ("uptime",),
                "disk": ("df", "-h"),
                "memory": ("free", "-m"),
            },
            timeout=20,
        ),
        CommandAgentSpec(
            kind="command",
            name="shell",
            description="Runs a shell line on this machine, after approval",
            command=("/bin/sh", "-c", "{input}"),
            timeout=120,
            policy=gated,
        ),
        LLMAgentSpec(
            kind="llm",
            name="assistant",
            description="A general assistant on an OpenAI-compatible model",
            model="gpt-4o-mini",
            instructions="You are a concise assistant for an operator.",
        ),
    )
    return Config(agents=agents, deck=DeckSection(default_agent="host"))
