"""What an agent is, as declared in `[[agents]]`: typed, validated, frozen."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, field_validator, model_validator

from roster.options import is_option

AGENT_NAME = r"^[a-z][a-z0-9_-]{0,39}$"
SECRET_NAME = r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$"  # noqa: S105 (a pattern, not a password)
# The bot's own environment variables (AGENTDECK_MASTER_KEY...): never a child's.
BOTS_OWN_PREFIX = "AGENTDECK_"
# The memory key of agents that share one memory per chat: no agent name starts with "@".
CHAT_MEMORY = "@chat"


ClaudePermissionMode = Literal["default", "acceptEdits", "plan", "bypassPermissions", "dontAsk"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApprovalMode(StrEnum):
    NEVER = "never"
    ALWAYS = "always"
    RULES = "rules"  # run unasked when the argv matches an `allow` rule
    # MCP tools: run unasked when the server marks the tool read-only (`readOnlyHint`).
    UNLESS_READ_ONLY = "unless-read-only"


class MemoryScope(StrEnum):
    AGENT = "agent"  # each agent remembers its own conversation in a chat
    CHAT = "chat"  # the agents marked so share one conversation and notes per chat


class Extra(StrEnum):
    """What an allow rule accepts after the argv it names."""

    NONE = "none"  # nothing: exactly the argv the rule names
    ANY = "any"  # any further words
    NO_OPTIONS = "no-options"  # further words, none starting with "-" (a lone "--" is fine)


class AllowRule(Strict):
    """An argv that runs unasked under `approval = "rules"`, and what may follow it."""

    argv: tuple[str, ...]
    extra: Extra = Extra.NONE

    @model_validator(mode="before")
    @classmethod
    def _plain_list_is_exact(cls, data: object) -> object:
        return {"argv": data} if isinstance(data, list | tuple) else data

    def matches(self, argv: Sequence[str]) -> bool:
        if tuple(argv[: len(self.argv)]) != self.argv:
            return False
        rest = argv[len(self.argv) :]
        if self.extra is Extra.NONE:
            return not rest
        return self.extra is Extra.ANY or not any(is_option(word) for word in rest)


class Policy(Strict):
    """When an action needs a human's yes, and whose."""

    approval: ApprovalMode = ApprovalMode.NEVER
    # What runs unasked under `approval = "rules"`: `["git", "status"]` is exactly that
    # argv; `{ argv = ["git", "log"], extra = "no-options" }` says what may follow.
    allow: tuple[AllowRule, ...] = ()
    # User ids (`telegram:123`) or roles (`admin`) who may decide.
    approvers: tuple[str, ...] = ("admin",)
    quorum: int = Field(default=1, ge=1, le=10)
    # False for high-risk actions: whoever asked cannot approve their own request.
    self_approval: bool = True
    expires_minutes: float = Field(default=30, gt=0)
    # Unanswered after this long, the card is posted again to `escalate_to` (a chat or user id).
    escalate_after_minutes: float | None = Field(default=None, gt=0)
    escalate_to: str = ""


CHAT_ID = r"^[a-z]+:.+$"


class ToolPolicy(Policy):
    """`[tool_policy.<tool>]`: a built-in tool's approval policy, and where it may reach."""

    # notify: chats it posts to unasked, besides the chat the request came from.
    chats: tuple[Annotated[str, Field(pattern=CHAT_ID)], ...] = ()


def lift_policy_keys(data: object) -> object:
    """Let `approval = "always"` and friends sit directly in `[[agents]]` or `[[tools]]`."""
    if not isinstance(data, dict):
        return data
    keys = set(Policy.model_fields) & set(data)
    if not keys:
        return data
    lifted = dict(data)
    policy = dict(lifted.pop("policy", {}) or {})
    policy.update({k: lifted.pop(k) for k in keys})
    return {**lifted, "policy": policy}


class AgentBase(Strict):
    name: str = Field(pattern=AGENT_NAME)
    description: str = ""
    # Words that send free text to this agent when no router model decides.
    keywords: tuple[str, ...] = ()
    enabled: bool = True
    policy: Policy = Policy()
    memory_turns: int | None = Field(default=None, ge=0, le=200)
    memory: MemoryScope = MemoryScope.AGENT
    # A run's wall-clock limit, tool calls and approvals waits excluded.
    run_timeout: float = Field(default=900, gt=0)
    # The only vault secrets this agent may use (`secret:NAME` in env or tool arguments).
    secrets: tuple[Annotated[str, Field(pattern=SECRET_NAME)], ...] = ()
    # Whether the output is Markdown, rendered as each chat shows it; unset: the kind's
    # default (`MARKDOWN`: models write Markdown, commands print preformatted text).
    markdown: bool | None = None
    MARKDOWN: ClassVar[bool] = False

    @property
    def renders_markdown(self) -> bool:
        return self.MARKDOWN if self.markdown is None else self.markdown

    @property
    def memory_key(self) -> str:
        """Whose memory this agent reads and writes: its own, or the chat's shared one."""
        return CHAT_MEMORY if self.memory is MemoryScope.CHAT else self.name

    @model_validator(mode="before")
    @classmethod
    def _policy_keys_at_top_level(cls, data: object) -> object:
        return lift_policy_keys(data)


class EchoAgentSpec(AgentBase):
    """Answers with the message it got: for trying transports and benchmarks."""

    kind: Literal["echo"]


class CommandAgentSpec(AgentBase):
    """A command line run as a subprocess: scripts, ops commands, CLI agents."""

    kind: Literal["command"]
    command: tuple[str, ...] = ()
    # A read-only dry run shown on the approval card (`["git", "diff", "--stat"]`).
    preview: tuple[str, ...] = ()
    # Named fixed command lines; the message's first word picks one (`/ask host disk`).
    actions: dict[str, tuple[str, ...]] = {}
    shell: bool = False
    stdin: bool = False
    # Message words that stand as arguments of their own may start with "-" (options).
    accept_options: bool = False
    # Put "--" between the template and the message's appended words (for programs
    # that read "--" as the end of options; the words after it may then start with "-").
    end_of_options: bool = False
    timeout: float = Field(default=60, gt=0)
    cwd: str | None = None
    env: dict[str, str] = {}

    @field_validator("command", mode="before")
    @classmethod
    def _one_string_is_one_word_list(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _has_something_to_run(self) -> CommandAgentSpec:
        if not self.command and not self.actions:
            raise ValueError("a command agent needs `command` or `actions`")
        return self

    @model_validator(mode="after")
    def _env_is_safe(self) -> CommandAgentSpec:
        check_env(self.env, self.secrets)
        return self


class LLMAgentSpec(AgentBase):
    """An OpenAI-compatible chat model with instructions and tools."""

    kind: Literal["llm"]
    MARKDOWN: ClassVar[bool] = True
    model: str = Field(min_length=1)
    # `[llm.providers.<name>]` that serves `model`; "default" is `[llm]` itself.
    provider: str = Field(default="default", pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    # Used for a call when `model` is rate-limited, failing or too slow after the client's
    # retries: `fallback_model` on the same provider, then `fallback` ("<provider>:<model>").
    fallback_model: str | None = Field(default=None, min_length=1)
    fallback: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    # What a chat may switch it to with /model (else `[llm.models]` of its provider).
    models: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    instructions: str = ""
    tools: tuple[str, ...] = ()
    max_turns: int = Field(default=5, ge=1, le=50)
    # The model takes images: photos sent with a message go to it as image parts.
    vision: bool = False
    # The answer streams: the chat shows it growing (each transport within its limits).
    stream: bool = True
    router: bool = False
    # Addresses that are not public (loopback, private, link-local, metadata) its tools
    # may reach, e.g. ["10.0.0.0/8", "127.0.0.1"]; refused otherwise (`roster.egress`).
    private_networks: tuple[IPvAnyNetwork, ...] = ()
    # `[[mcp_servers]]` whose tools the model is offered (`<server>__<tool>`), and, when
    # given, only these of them (`mcp_tools = ["time__get_current_time"]`).
    mcp: tuple[str, ...] = ()
    mcp_tools: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _mcp_tools_come_from_listed_servers(self) -> LLMAgentSpec:
        for name in self.mcp_tools:
            server, sep, tool = name.partition("__")
            if not (sep and tool) or server not in self.mcp:
                raise ValueError(
                    f"mcp_tools: {name!r} is not `<server>__<tool>` of a server in `mcp` "
                    f"({', '.join(self.mcp) or 'none listed'})"
                )
        return self


class ClaudeAgentSpec(AgentBase):
    """Claude Code through its Python SDK: a coding agent with sessions per chat (issue 17)."""

    kind: Literal["claude"]
    cwd: str = Field(min_length=1)  # its working directory (checked by `agentdeck check`)
    model: str | None = Field(default=None, min_length=1)
    instructions: str = ""  # appended to Claude Code's own system prompt
    allowed_tools: tuple[str, ...] = ()  # run without a card (`Read`, `Bash(git status)`)
    disallowed_tools: tuple[str, ...] = ()
    permission_mode: ClaudePermissionMode = "default"
    max_turns: int | None = Field(default=None, ge=1, le=500)
    env: dict[str, str] = {}
    mcp_servers: dict[str, dict[str, Any]] = {}
    timeout: float = Field(default=1800, gt=0)  # one turn, approval waits included
    run_timeout: float = Field(default=7200, gt=0)
    cli: str | None = None  # the `claude` program; by default the one the SDK bundles

    @model_validator(mode="after")
    def _env_is_safe(self) -> ClaudeAgentSpec:
        check_env(self.env, self.secrets)
        return self


class CodexSandbox(StrEnum):
    READ_ONLY = "read-only"
    WORKSPACE_WRITE = "workspace-write"
    FULL_ACCESS = "danger-full-access"


class CodexAgentSpec(AgentBase):
    """OpenAI's Codex CLI (`codex exec --json`): sessions per chat, its sandbox as the brake."""

    kind: Literal["codex"]
    cwd: str = Field(min_length=1)
    model: str | None = Field(default=None, min_length=1)
    sandbox: CodexSandbox = CodexSandbox.READ_ONLY
    env: dict[str, str] = {}
    timeout: float = Field(default=600, gt=0)  # one turn (the run's own limit is longer)
    cli: str = "codex"

    @model_validator(mode="after")
    def _env_is_safe(self) -> CodexAgentSpec:
        check_env(self.env, self.secrets)
        return self


def check_env(env: dict[str, str], secrets: tuple[str, ...]) -> None:
    """An agent's `env`: nothing of the bot's own, and only secrets the agent lists."""
    for key, value in env.items():
        if key.startswith(BOTS_OWN_PREFIX) or value.startswith(f"env:{BOTS_OWN_PREFIX}"):
            raise ValueError(
                f"env.{key}: {BOTS_OWN_PREFIX}* variables are the bot's own (its master "
                "key among them) and are never passed to a child; remove it"
            )
        name = value.removeprefix("secret:")
        if value.startswith("secret:") and name not in secrets:
            raise ValueError(
                f"env.{key} uses secret:{name}, which is not in this agent's `secrets` "
                f"list; add it: secrets = [{name!r}]"
            )


AgentSpec = Annotated[
    EchoAgentSpec | CommandAgentSpec | LLMAgentSpec | ClaudeAgentSpec | CodexAgentSpec,
    Field(discriminator="kind"),
]
