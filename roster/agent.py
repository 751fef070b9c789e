"""What every agent has in common: a request in, an outcome out.

A run either finishes or stops at an action that needs approval. Stopping returns
the state needed to go on (`NeedsApproval.state`, plain JSON), which the bot stores,
so a run can resume after a restart as easily as a second later.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from roster.spec import AgentBase, ApprovalMode, Policy

CLI_TOOL = "cli_tool"  # the action kind of a coding agent's permission prompt


@dataclass(frozen=True, slots=True)
class Turn:
    role: str  # user | assistant | summary
    content: str


@dataclass(frozen=True, slots=True)
class Received:
    """A file someone sent with a message, as saved for the agents (`bot.intake.files`)."""

    path: str
    kind: str  # "photo" or "document"
    name: str
    mime: str = ""
    size: int = 0
    # A document's text, when a model may read it as text (`roster.documents`).
    text: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class AgentRequest:
    run_id: str
    chat_id: str
    user_id: str
    text: str
    history: Sequence[Turn] = ()
    hops: tuple[str, ...] = ()  # agents already in this request's chain (delegation)
    thread: str | None = None  # where in the chat the answer goes
    # Files sent with the message, saved under the data directory (never named in text a
    # person typed: only the bot's own download puts a file here).
    files: tuple[Received, ...] = ()
    # A folder the agent may write files into, sent to the chat when the run ends.
    outbox: str | None = None


@dataclass(frozen=True, slots=True)
class Action:
    """An exact thing an agent wants to do; approvals bind to its hash."""

    agent: str
    kind: str  # command | tool
    argv: tuple[str, ...] = ()
    cwd: str | None = None
    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)

    def digest(self) -> str:
        body = [self.agent, self.kind, list(self.argv), self.cwd, self.tool, self.arguments]
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "kind": self.kind,
            "argv": list(self.argv),
            "cwd": self.cwd,
            "tool": self.tool,
            "arguments": self.arguments,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Action:
        return cls(
            agent=data["agent"],
            kind=data["kind"],
            argv=tuple(data.get("argv") or ()),
            cwd=data.get("cwd"),
            tool=data.get("tool"),
            arguments=dict(data.get("arguments") or {}),
        )


@dataclass(frozen=True, slots=True)
class Decision:
    approved: bool
    by: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Usage:
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0  # priced per call, since a run may switch to its fallback model

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.tokens_in + other.tokens_in,
            self.tokens_out + other.tokens_out,
            self.cost + other.cost,
        )

    def to_json(self) -> dict[str, float]:
        return {"tokens_in": self.tokens_in, "tokens_out": self.tokens_out, "cost": self.cost}


@dataclass(frozen=True, slots=True)
class Finished:
    text: str
    ok: bool = True
    exit_code: int | None = None
    usage: Usage = Usage()
    denied: bool = False  # an approver said no: nothing ran (the run ends "denied")
    # Which model answered, when not the one asked first (shown, not remembered).
    answered_by: str = ""


@dataclass(frozen=True, slots=True)
class NeedsApproval:
    action: Action
    policy: Policy
    state: dict[str, Any]
    usage: Usage = Usage()


Outcome = Finished | NeedsApproval


class RunContext(Protocol):
    """What the bot offers an agent while it runs."""

    async def progress(self, text: str) -> None:
        """Show output so far (the transport edits one message, throttled)."""

    async def stream(self, text: str) -> None:
        """Show a model's answer as it is written (Markdown, the text so far)."""

    async def before_model_call(self) -> None:
        """Raise `BudgetExceeded` when one more model call would pass today's budget."""

    def spent(self, usage: Usage) -> None:
        """Count what a model call used, at once (budgets see it before the run ends)."""

    def tool_called(self, tool: str, arguments: str, result: str, *, status: str) -> None:
        """Record a tool call and its (scrubbed) result, for the run's history."""

    async def before_effect(self) -> None:
        """Wait until the run is stored: call it before anything that cannot be taken back
        (starting a process, a tool call). A crash after it leaves a run to report, never
        a message to handle again."""

    def process_started(self, pid: int) -> None:
        """Record the process group a command runs in (its own session: the group's id is
        the pid), so that a start after a crash can stop what it left running."""

    async def ask(self, gate: NeedsApproval) -> Decision:
        """Post an approval card and wait, the run still live, for its decision.

        For agents that cannot stop and resume later (a CLI asking for a permission while
        its process runs): the same approvers, quorum, expiry and audit as every card; an
        "approve for this conversation" on the same action answers at once.
        """


class Agent(ABC):
    spec: AgentBase
    # Whether `summarise` folds older turns (llm agents); others keep a plain window.
    summarises: ClassVar[bool] = False
    # Whether the conversation so far is read for each request (commands and echo don't).
    reads_history: ClassVar[bool] = False

    @property
    def name(self) -> str:
        return self.spec.name

    def unavailable_reason(self) -> str | None:
        """Why this agent cannot run right now, or None."""
        return None if self.spec.enabled else "disabled in config"

    def gate(self, request: AgentRequest) -> NeedsApproval | None:
        """The approval needed before the run starts at all, if any."""
        return None

    def recheck(self, request: AgentRequest, state: dict[str, Any]) -> NeedsApproval | None:
        """The approval a stored suspension of `request` needs by today's definition of this agent.

        A decision binds to the exact action: if the agent's config changed the action
        since the card was posted, the runner asks again instead of running it.
        """
        return None

    async def preview(self, action: Action) -> str:
        """A dry run shown on the approval card, if this agent defines one."""
        return ""

    @abstractmethod
    async def start(self, request: AgentRequest, ctx: RunContext) -> Outcome: ...

    async def summarise(self, previous: str, turns: Sequence[Turn]) -> str | None:
        """Fold older turns into a running summary; None keeps a plain window (default)."""
        return None

    async def resume(
        self, request: AgentRequest, state: dict[str, Any], decision: Decision, ctx: RunContext
    ) -> Outcome:
        """Go on after a decision on the action this agent stopped at."""
        if not decision.approved:
            return Finished(_denied_text(decision), ok=False, denied=True)
        return await self.start(request, ctx)


def needs_approval(policy: Policy, argv: Sequence[str]) -> bool:
    """Apply a policy to a parsed argv (never shell text): does no allow rule match it?"""
    if policy.approval is ApprovalMode.NEVER:
        return False
    if policy.approval in (ApprovalMode.ALWAYS, ApprovalMode.UNLESS_READ_ONLY):
        return True  # only an MCP tool knows whether it is read-only (`roster.mcp.tool`)
    return not any(rule.matches(argv) for rule in policy.allow)


def _denied_text(decision: Decision) -> str:
    reason = f": {decision.reason}" if decision.reason else ""
    return f"Denied by {decision.by}{reason}. Nothing ran."


class EchoAgent(Agent):
    def __init__(self, spec: AgentBase) -> None:
        self.spec = spec

    async def start(self, request: AgentRequest, ctx: RunContext) -> Outcome:
        return Finished(request.text)


class MissingAgent(Agent):
    """An agent declared in the config that cannot run here; it says why when asked."""

    def __init__(self, spec: AgentBase, reason: str) -> None:
        self.spec = spec
        self._reason = reason

    def unavailable_reason(self) -> str | None:
        return self._reason

    async def start(self, request: AgentRequest, ctx: RunContext) -> Outcome:
        return Finished(f"{self.name} cannot run: {self._reason}.", ok=False)
