"""Errors raised by the roster.

RosterError(Exception)
├── AgentNotFound(LookupError)    no agent by that name
├── AgentUnavailable              the agent exists but cannot run (disabled, no key)
├── AgentFailed                   a run failed in a way worth telling the user
│   ├── ModelError                the model API refused, failed or timed out
│   │   ├── ModelUnavailable      ... in a way another model may not (429, 5xx, timeout)
│   │   └── StreamBroken          a streamed answer was cut off mid-way
│   ├── CommandNotStarted         a command's program or working directory is missing
│   └── BudgetExceeded            today's token or money budget is spent
├── ToolError                     a tool was called wrongly or failed
│   ├── EgressRefused             the egress policy refused where a call would go
│   └── McpServerDown             an MCP server did not start, or stopped during a call
├── ReferenceNotFound(LookupError) an `env:` or `secret:` reference names nothing
└── SecretNotAllowed(PermissionError) an agent used a secret its `secrets` list lacks
"""

from __future__ import annotations


class RosterError(Exception):
    pass


class AgentNotFound(RosterError, LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        listed = ", ".join(known) or "none"
        super().__init__(f"No agent named {name!r}. Agents: {listed}.")
        self.name = name


class AgentUnavailable(RosterError):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"Agent {name!r} is unavailable: {reason}")
        self.name = name
        self.reason = reason


class AgentFailed(RosterError):
    pass


class CommandNotStarted(AgentFailed):
    """The message names the program or directory and what to do; never an OSError's name."""


class ModelError(AgentFailed):
    pass


class ModelUnavailable(ModelError):
    """Rate-limited, a server error, a timeout or no connection: worth the next fallback."""


class StreamBroken(ModelError):
    """A streamed answer broke off mid-way; `shown` is what was shown of it (maybe none)."""

    def __init__(self, reason: str, shown: str) -> None:
        said = f"{shown.rstrip()}\n\n(the answer broke off here: {reason})" if shown else reason
        super().__init__(said)
        self.shown = shown


class BudgetExceeded(AgentFailed):
    """Today's token or money budget is spent; an admin can extend it."""


class ToolError(RosterError):
    pass


class McpServerDown(ToolError):
    """An MCP server cannot be reached now; it is started again on a later call."""

    def __init__(self, server: str, why: str) -> None:
        super().__init__(f"MCP server {server!r} is unavailable: {why}")
        self.server = server


class EgressRefused(ToolError):
    """A tool call would reach an address or place its agent may not reach."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"refused: {reason}")
        self.reason = reason


class ReferenceNotFound(RosterError, LookupError):
    pass


class SecretNotAllowed(RosterError, PermissionError):
    def __init__(self, agent: str, name: str) -> None:
        super().__init__(
            f"Agent {agent!r} may not use secret {name!r}: add {name!r} to the agent's "
            "`secrets` list in the config."
        )
        self.agent = agent
        self.name = name
