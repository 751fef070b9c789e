"""What an agent is, as declared in `[[agents]]`: typed, validated, frozen."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

AGENT_NAME = r"^[a-z][a-z0-9_-]{0,39}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApprovalMode(StrEnum):
    NEVER = "never"
    ALWAYS = "always"
    RULES = "rules"  # run unasked when the argv matches an `allow` rule


class Policy(Strict):
    """When an action needs a human's yes, and whose."""

    approval: ApprovalMode = ApprovalMode.NEVER
    # Argv prefixes that run unasked under `approval = "rules"`, e.g. [["git", "status"], ["df"]].
    allow: tuple[tuple[str, ...], ...] = ()
    # User ids (`telegram:123`) or roles (`admin`) who may decide.
    approvers: tuple[str, ...] = ("admin",)
    quorum: int = Field(default=1, ge=1, le=10)
    self_approval: bool = True
    expires_minutes: float = Field(default=30, gt=0)


class AgentBase(Strict):
    name: str = Field(pattern=AGENT_NAME)
    description: str = ""
    enabled: bool = True
    policy: Policy = Policy()
    memory_turns: int | None = Field(default=None, ge=0, le=200)

    @model_validator(mode="before")
    @classmethod
    def _policy_keys_at_top_level(cls, data: object) -> object:
        """Let `approval = "always"` and friends sit directly in `[[agents]]`."""
        if not isinstance(data, dict):
            return data
        keys = set(Policy.model_fields) & set(data)
        if not keys:
            return data
        data = dict(data)
        policy = dict(data.pop("policy", {}) or {})
        policy.update({k: data.pop(k) for k in keys})
        data["policy"] = policy
        return data


class EchoAgentSpec(AgentBase):
    """Answers with the message it got: for trying transports and benchmarks."""

    kind: Literal["echo"]


class CommandAgentSpec(AgentBase):
    """A command line run as a subprocess: scripts, ops commands, CLI agents."""

    kind: Literal["command"]
    command: tuple[str, ...] = ()
    # Named fixed command lines; the message's first word picks one (`/ask host disk`).
    actions: dict[str, tuple[str, ...]] = {}
    shell: bool = False
    stdin: bool = False
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


class LLMAgentSpec(AgentBase):
    """An OpenAI-compatible chat model with instructions and tools."""

    kind: Literal["llm"]
    model: str = Field(min_length=1)
    instructions: str = ""
    tools: tuple[str, ...] = ()
    max_turns: int = Field(default=5, ge=1, le=50)
    router: bool = False


AgentSpec = Annotated[EchoAgentSpec | CommandAgentSpec | LLMAgentSpec, Field(discriminator="kind")]
