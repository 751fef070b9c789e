"""The config file: TOML parsed into one validated, typed object.

Errors name the file and the key path (`agents[2].timeout`), never a traceback.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Collection
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.errors import ConfigError
from bot.trigger_spec import TriggerEntry, WebhooksSection
from roster.egress import SecretBinding
from roster.mcp.spec import McpServerSpec, server_of
from roster.pricing import Price
from roster.providers import DEFAULT, PROVIDER_NAME, ProviderSpec
from roster.spec import (
    AgentSpec,
    ApprovalMode,
    CommandAgentSpec,
    LLMAgentSpec,
    Policy,
    ToolPolicy,
)
from roster.toolkit.registry import BUILTIN_NAMES
from roster.toolkit.templated import CommandToolSpec

if TYPE_CHECKING:
    from scheduler.plan import Plan

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


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class DeckSection(Section):
    data_dir: str = ""
    database_url: str = ""
    default_agent: str = ""
    timezone: str = "UTC"
    admin_chat: str = ""
    memory_turns: int = Field(default=10, ge=0, le=200)
    max_message_chars: int = Field(default=20_000, ge=100)
    # Delegations (`ask_agent`) one request may chain, the router's hand-off included.
    max_hops: int = Field(default=5, ge=1, le=20)
    # Brakes: messages a user may send per minute; consecutive failures that disable an agent.
    rate_limit_per_minute: int = Field(default=30, ge=0)
    breaker_failures: int = Field(default=5, ge=0)
    # "json": one JSON object per log line (time, level, logger, message, run and chat).
    log_format: LogFormat = LogFormat.TEXT
    # Several processes on one database: each beats a heartbeat row; one silent for
    # `process_stale_seconds` is gone, and a live one takes over its runs and updates.
    process_heartbeat_seconds: float = Field(default=10, gt=0)
    process_stale_seconds: float = Field(default=60, gt=0)
    # On SIGTERM running work may finish for this long; what is left is then cancelled.
    stop_grace_seconds: float = Field(default=10, gt=0, le=3600)
    # The largest file (voice note, audio) the bot downloads from a chat, in megabytes.
    max_file_mb: float = Field(default=20, gt=0, le=2000)
    # Files sent to agents are kept under the data directory this many days.
    attachments_days: float = Field(default=30, gt=0)

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)

    @model_validator(mode="after")
    def _stale_after_several_beats(self) -> DeckSection:
        if self.process_stale_seconds < 2 * self.process_heartbeat_seconds:
            raise ValueError(
                "process_stale_seconds must be at least twice process_heartbeat_seconds"
            )
        return self

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Europe/Berlin)") from None
        return value

    def data_path(self) -> Path:
        raw = self.data_dir or os.environ.get("AGENTDECK_DATA_DIR") or DEFAULT_DATA_DIR
        return Path(raw).expanduser()

    def database(self) -> str:
        from storage.db import sqlite_url

        return self.database_url or sqlite_url(self.data_path())


class MetricsSection(Section):
    """A Prometheus text endpoint (`/metrics`): runs, latency, approvals, errors, queues."""

    enabled: bool = False
    listen: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)  # 0: any free port (tests)


class McpSection(Section):
    """`agentdeck mcp`: the deck served to MCP clients (stdio, and HTTP when `port` is set).

    Every call acts as `user` (its role decides what it may do) and posts to `chat`
    (the run's answer, and the approval cards that must be pressed there).
    """

    user: str = Field(default="", pattern=r"^([a-z]+:.+)?$")
    chat: str = Field(default="", pattern=r"^([a-z]+:.+)?$")
    listen: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=0, le=65535)  # streamable HTTP; 0: any free
    # HTTP callers send `Authorization: Bearer <token>` (a `secret:`/`env:` reference).
    token: str = ""
    # How long `ask_agent` waits for a run (approvals included) before answering "still running".
    wait_seconds: float = Field(default=600, gt=0)

    @model_validator(mode="after")
    def _http_needs_a_token(self) -> McpSection:
        if self.port is not None and not self.token:
            raise ValueError(
                "token: serving MCP over HTTP needs a bearer token (any local process can "
                'reach the port): token = "secret:MCP_SERVE_TOKEN"'
            )
        if self.port is not None and not (self.user and self.chat):
            raise ValueError("user and chat: who MCP callers act as, and where runs report")
        return self


class LLMSection(Section):
    """The default model provider, and the other providers by name (`roster.providers`)."""

    base_url: str = Field(default="", pattern=r"^(https?://\S+)?$")
    api_key: str = "env:OPENAI_API_KEY"
    timeout: float = Field(default=60, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    # The model voice notes are written down with (`/audio/transcriptions`, e.g.
    # "whisper-1"), at the same provider as chat; empty: voice notes are not taken.
    transcription_model: str = ""
    providers: dict[Annotated[str, Field(pattern=PROVIDER_NAME)], ProviderSpec] = {}
    # The models /model may switch an agent to, per provider (agents' `models` win).
    models: dict[str, tuple[str, ...]] = {}

    @model_validator(mode="after")
    def _providers_fit_together(self) -> LLMSection:
        if DEFAULT in self.providers:
            raise ValueError(f"providers.{DEFAULT}: that name is [llm] itself; pick another")
        for name in self.models:
            if name != DEFAULT and name not in self.providers:
                raise ValueError(f"models.{name}: no provider named {name!r} in [llm.providers]")
        return self


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
    secret_token: str = ""  # a value or an env:/secret: reference; empty: from the token
    max_connections: int = Field(default=64, ge=1, le=1024)
    # Telegram's flood limits; 0 switches a limit off (a self-hosted Bot API server).
    messages_per_second: float = Field(default=30, ge=0)
    group_messages_per_minute: float = Field(default=20, ge=0)

    @field_validator("base_url")
    @classmethod
    def _bot_api_shape(cls, value: str) -> str:
        if value and not (value.startswith(("http://", "https://")) and value.endswith("/bot")):
            raise ValueError(
                "Telegram base_url must start with http(s):// and end in /bot "
                "(as https://api.telegram.org/bot; the token is appended to it)"
            )
        return value

    @model_validator(mode="after")
    def _webhook_needs_url(self) -> TelegramSection:
        if self.mode is TelegramMode.WEBHOOK and not self.webhook_url:
            raise ValueError("webhook mode needs webhook_url")
        return self


class SlackMode(StrEnum):
    SOCKET = "socket"  # a WebSocket from here to Slack: no public URL needed
    HTTP = "http"  # the Events API POSTs to listen:port/path


class SlackSection(Section):
    bot_token: str = Field(default="env:SLACK_BOT_TOKEN", pattern=r"^(env|secret):.+$")
    app_token: str = Field(default="env:SLACK_APP_TOKEN", pattern=r"^(env|secret):.+$")
    signing_secret: str = Field(default="env:SLACK_SIGNING_SECRET", pattern=r"^(env|secret):.+$")
    mode: SlackMode = SlackMode.SOCKET
    listen: str = "127.0.0.1"
    port: int = Field(default=3000, ge=0, le=65535)
    path: str = Field(default="/slack/events", pattern=r"^/")
    base_url: str = ""
    command: str = Field(default="/deck", pattern=r"^/[a-z0-9_-]+$")
    timeout: float = Field(default=15, gt=0)
    # Everyone who writes in a channel named in [[bindings]] gets this role there.
    channel_members: Role | None = None

    @field_validator("base_url")
    @classmethod
    def _web_api_shape(cls, value: str) -> str:
        if value and not (value.startswith(("http://", "https://")) and value.endswith("/")):
            raise ValueError(
                "Slack base_url must start with http(s):// and end in / "
                "(as https://slack.com/api/; method names are appended to it)"
            )
        return value

    @model_validator(mode="after")
    def _members_are_not_admins(self) -> SlackSection:
        if self.channel_members is Role.ADMIN:
            raise ValueError("channel_members may be operator or viewer; list admins in [[users]]")
        return self


class SchedulerSection(Section):
    enabled: bool = True
    # Runs missed during a downtime are made up by one run when the newest of them is
    # at most this old; older ones are reported, not run.
    misfire_grace_minutes: float = Field(default=60, ge=0)
    heartbeat_seconds: float = Field(default=30, gt=0)
    # A due run this late means the scheduler stopped firing: the admin chat is told.
    stall_seconds: float = Field(default=120, gt=0)
    sync_seconds: float = Field(default=2, gt=0)
    takeover_seconds: float = Field(default=5, gt=0)


class DashboardSection(Section):
    """The operator's web dashboard, served by the bot itself; sign-in by a link from chat."""

    enabled: bool = False
    listen: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)  # 0: any free port (tests)
    # Where operators reach it (a reverse proxy); empty: http://listen:port.
    public_url: str = Field(default="", pattern=r"^(https?://[^\s]+)?$")
    link_minutes: float = Field(default=5, gt=0, le=60)
    session_hours: float = Field(default=12, gt=0, le=24 * 30)


class JobEntry(Section):
    """A job declared in `[[jobs]]`: synced at start; chat may pause it, not remove it."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{1,31}$")
    agent: str
    input: str = ""
    every: str = ""
    cron: str = ""
    at: str = ""
    timezone: str = ""  # default: [deck] timezone
    report_to: str = Field(default="", pattern=r"^([a-z]+:.+)?$")  # default: [deck] admin_chat

    @model_validator(mode="after")
    def _one_readable_schedule(self) -> JobEntry:
        from scheduler.errors import ScheduleError

        try:
            self.schedule("UTC")
        except ScheduleError as exc:
            raise ValueError(str(exc)) from None
        return self

    def schedule(self, default_timezone: str) -> Plan:
        from scheduler.parse import parse_config_schedule

        pairs = (("every", self.every), ("cron", self.cron), ("at", self.at))
        given = {kind: text for kind, text in pairs if text}
        return parse_config_schedule(given, timezone=self.timezone or default_timezone)


class BudgetEntry(Section):
    """A daily cap for one agent, chat or job; at the cap, work waits for an admin's extension."""

    agent: str = ""
    chat: str = ""
    job: str = ""
    daily_tokens: int | None = Field(default=None, gt=0)
    daily_cost: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_target_one_cap(self) -> BudgetEntry:
        if sum(bool(t) for t in (self.agent, self.chat, self.job)) != 1:
            raise ValueError("a budget names exactly one of agent, chat or job")
        if self.daily_tokens is None and self.daily_cost is None:
            raise ValueError("a budget needs daily_tokens or daily_cost")
        return self

    @property
    def scope(self) -> tuple[str, str]:
        if self.agent:
            return ("agent", self.agent)
        return ("chat", self.chat) if self.chat else ("job", self.job)


class Config(Section):
    deck: DeckSection = DeckSection()
    llm: LLMSection = LLMSection()
    agents: tuple[AgentSpec, ...] = ()
    users: tuple[UserEntry, ...] = ()
    bindings: tuple[Binding, ...] = ()
    console: ConsoleSection = ConsoleSection()
    telegram: TelegramSection | None = None
    scheduler: SchedulerSection = SchedulerSection()
    jobs: tuple[JobEntry, ...] = ()
    slack: SlackSection | None = None
    dashboard: DashboardSection = DashboardSection()
    metrics: MetricsSection = MetricsSection()
    budgets: tuple[BudgetEntry, ...] = ()
    tools: tuple[CommandToolSpec, ...] = ()
    # Approval policy per tool name, over the tool's own default (`[tool_policy.notify]`).
    tool_policy: dict[str, ToolPolicy] = {}
    # MCP servers whose tools llm agents may list (`mcp = ["time"]`).
    mcp_servers: tuple[McpServerSpec, ...] = ()
    mcp: McpSection = McpSection()
    # Where vault secrets may be sent unasked (`[[secrets]] name = "X", hosts = [...]`).
    secrets: tuple[SecretBinding, ...] = ()
    # Per million tokens, by model name (`[prices."gpt-4o-mini"] input = 0.15`).
    prices: dict[str, Price] = {}
    # Webhooks that start agents (`bot.triggers`), and the listener they use without Telegram's.
    triggers: tuple[TriggerEntry, ...] = ()
    webhooks: WebhooksSection = WebhooksSection()
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

    @model_validator(mode="after")
    def _tools_fit_together(self) -> Config:
        names = [tool.name for tool in self.tools]
        clashes = sorted({n for n in names if names.count(n) > 1 or n in BUILTIN_NAMES})
        if clashes:
            raise ValueError(f"tools: names must be unique and not built-in: {', '.join(clashes)}")
        routers = [a.name for a in self.agents if isinstance(a, LLMAgentSpec) and a.router]
        if len(routers) > 1:
            raise ValueError(f"only one agent may be the router; marked: {', '.join(routers)}")
        return self

    @model_validator(mode="after")
    def _mcp_fits_together(self) -> Config:
        servers = [server.name for server in self.mcp_servers]
        duplicates = sorted({name for name in servers if servers.count(name) > 1})
        if duplicates:
            repeated = ", ".join(duplicates)
            raise ValueError(f"mcp_servers: names must be unique; repeated: {repeated}")
        for agent in self.agents:
            if agent.policy.approval is ApprovalMode.UNLESS_READ_ONLY:
                raise ValueError(
                    f"agents.{agent.name}: approval = 'unless-read-only' is for MCP tools only"
                )
            unknown = [s for s in getattr(agent, "mcp", ()) if s not in servers]
            if unknown:
                raise ValueError(
                    f"agents.{agent.name}.mcp names {', '.join(unknown)}, not in [[mcp_servers]]"
                )
        for name, policy in self.tool_policy.items():
            mode = policy.approval is ApprovalMode.UNLESS_READ_ONLY
            if mode and server_of(name) not in servers:
                raise ValueError(f"tool_policy.{name}: 'unless-read-only' is for MCP tools only")
        return self

    @model_validator(mode="after")
    def _egress_fits_together(self) -> Config:
        names = [binding.name for binding in self.secrets]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"secrets: one entry per secret; repeated: {', '.join(duplicates)}")
        for name, policy in self.tool_policy.items():
            if policy.chats and name != "notify":
                raise ValueError(f"tool_policy.{name}.chats: only notify posts to chats")
        return self

    @model_validator(mode="after")
    def _jobs_fit_together(self) -> Config:
        names = [job.name for job in self.jobs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"job names must be unique; repeated: {', '.join(duplicates)}")
        for i, job in enumerate(self.jobs):
            if not self.report_chat(job):
                raise ValueError(
                    f"jobs[{i}].report_to: say where the job reports (or set [deck] admin_chat)"
                )
        return self

    @model_validator(mode="after")
    def _models_fit_together(self) -> Config:
        known = {DEFAULT, *self.llm.providers}
        for i, agent in enumerate(self.agents):
            if isinstance(agent, LLMAgentSpec) and agent.provider not in known:
                raise ValueError(
                    f"agents[{i}].provider: no provider named {agent.provider!r}; "
                    f"known: {', '.join(sorted(known))}"
                )
        return self

    @model_validator(mode="after")
    def _triggers_fit_together(self) -> Config:
        for key in ("name", "path"):
            values = [getattr(trigger, key) for trigger in self.triggers]
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"triggers: each {key} once; repeated: {', '.join(repeated)}")
        hook = self.telegram
        if hook is not None and hook.mode is TelegramMode.WEBHOOK:
            for i, trigger in enumerate(self.triggers):
                if trigger.path == hook.path:
                    raise ValueError(f"triggers[{i}].path: {hook.path} is Telegram's webhook")
        return self

    def _agent_references(self) -> list[tuple[str, str]]:
        refs = [(f"bindings[{i}].agent", b.agent) for i, b in enumerate(self.bindings)]
        refs += [(f"triggers[{i}].agent", t.agent) for i, t in enumerate(self.triggers)]
        refs += [(f"jobs[{i}].agent", job.agent) for i, job in enumerate(self.jobs)]
        if self.deck.default_agent:
            refs.append(("deck.default_agent", self.deck.default_agent))
        return refs

    def console_enabled(self) -> bool:
        if self.console.enabled == "auto":
            return self.telegram is None and self.slack is None
        return bool(self.console.enabled)

    def transport_names(self) -> list[str]:
        """The transports this config runs, in the order the deck starts them."""
        sections = (("telegram", self.telegram), ("slack", self.slack))
        names = [name for name, section in sections if section is not None]
        return names + (["console"] if self.console_enabled() else [])

    def report_chat(self, job: JobEntry) -> str:
        """Where a `[[jobs]]` entry reports: its `report_to`, else the admin chat."""
        return job.report_to or self.deck.admin_chat

    def unserved_reports(self, transports: Collection[str]) -> list[str]:
        """Each job's and trigger's report chat that none of `transports` posts to."""
        targets = [
            (f"jobs[{i}].report_to", self.report_chat(job)) for i, job in enumerate(self.jobs)
        ]
        targets += [(f"triggers[{i}].report", t.report) for i, t in enumerate(self.triggers)]
        running = ", ".join(transports) or "none"
        return [
            f"{where}: no transport {chat.partition(':')[0]!r} runs here to post to {chat} "
            f"(running: {running})"
            for where, chat in targets
            if chat.partition(":")[0] not in transports
        ]

    def chat_roles(self) -> dict[str, Role]:
        """Roles that come with writing in a chat (Slack's `channel_members`), by chat id."""
        if self.slack is None or self.slack.channel_members is None:
            return {}
        role = self.slack.channel_members
        return {b.chat: role for b in self.bindings if b.chat.startswith("slack:")}


# The config in effect now: a reload replaces the deck's (`bot.reload`), so whoever reads a
# reloadable setting later asks each time, rather than keeping the one it was built with.
CurrentConfig = Callable[[], Config]


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
    # Keys come from the file: escape control characters so the error stays one line.
    path = _key_path(first["loc"], data).encode("unicode_escape").decode("ascii")
    message = " ".join(first["msg"].removeprefix("Value error, ").split())
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
