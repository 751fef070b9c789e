"""Errors raised by the roster.

RosterError(Exception)
├── AgentNotFound(LookupError)    no agent by that name
├── AgentUnavailable              the agent exists but cannot run (disabled, no key)
├── AgentFailed                   a run failed in a way worth telling the user
│   └── ModelError                the model API refused, failed or timed out
├── ToolError                     a tool was called wrongly or failed
└── ReferenceNotFound(LookupError) an `env:` or `secret:` reference names nothing
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


class ModelError(AgentFailed):
    pass


class ToolError(RosterError):
    pass


class ReferenceNotFound(RosterError, LookupError):
    pass
