"""The roster: every agent by name, with what it needs to run."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from roster.agent import Agent, EchoAgent
from roster.command import CommandAgent
from roster.egress import Egress, SecretBinding
from roster.errors import AgentNotFound, AgentUnavailable
from roster.llm import LLMAgent
from roster.mcp.pool import AgentTools, McpPool
from roster.pricing import NO_PRICES, PriceTable
from roster.providers import ModelChoices, Providers
from roster.refs import AllowedSecrets, SecretSource
from roster.spec import AgentBase, CommandAgentSpec, EchoAgentSpec, LLMAgentSpec
from roster.tools import ToolBox


class Roster:
    def __init__(self, agents: Iterable[Agent]) -> None:
        self._agents = {agent.name: agent for agent in agents}
        self._disabled: set[str] = set()  # switched off from chat, until switched on again

    @classmethod
    def build(
        cls,
        specs: Iterable[AgentBase],
        *,
        providers: Providers,
        tools: ToolBox,
        secrets: SecretSource,
        prices: PriceTable = NO_PRICES,
        bindings: Iterable[SecretBinding] = (),
        choices: ModelChoices | None = None,
        mcp: McpPool | None = None,
    ) -> Roster:
        """The agents of `specs`; `bindings` (`[[secrets]]`) say where secrets may go,
        `choices` which model each chat picked for an llm agent (`/model`), `mcp` holds
        the MCP servers llm agents may list."""
        models = _Models(providers, choices)
        bound = tuple(bindings)
        return cls(
            _make_agent(
                spec,
                models=models,
                tools=tools,
                secrets=secrets,
                prices=prices,
                bound=bound,
                mcp=mcp,
            )
            for spec in specs
        )

    def replace(self, agents: Iterable[Agent]) -> None:
        """Swap in a new set of agents (a config reload), in place: every holder sees it.

        A run that started before keeps the agent object it holds; an agent switched
        off from chat stays off under the same name.
        """
        self._agents = {agent.name: agent for agent in agents}
        self._disabled &= set(self._agents)

    def __iter__(self) -> Iterator[Agent]:
        return iter(self._agents.values())

    def __contains__(self, name: object) -> bool:
        return name in self._agents

    def names(self) -> list[str]:
        return list(self._agents)

    def get(self, name: str) -> Agent:
        agent = self._agents.get(name.lower())
        if agent is None:
            raise AgentNotFound(name, self.names())
        return agent

    def runnable(self, name: str) -> Agent:
        """The agent, if it can run now; otherwise say why not."""
        agent = self.get(name)
        reason = self.unavailable_reason(agent)
        if reason:
            raise AgentUnavailable(agent.name, reason)
        return agent

    def unavailable_reason(self, agent: Agent) -> str | None:
        if agent.name in self._disabled:
            return "disabled from chat (/enable to switch it on)"
        return agent.unavailable_reason()

    def set_enabled(self, name: str, enabled: bool) -> Agent:
        agent = self.get(name)
        if enabled:
            self._disabled.discard(agent.name)
        else:
            self._disabled.add(agent.name)
        return agent


@dataclass(frozen=True, slots=True)
class _Models:
    providers: Providers
    choices: ModelChoices | None


def _make_agent(
    spec: AgentBase,
    *,
    models: _Models,
    tools: ToolBox,
    secrets: SecretSource,
    prices: PriceTable,
    bound: tuple[SecretBinding, ...],
    mcp: McpPool | None,
) -> Agent:
    allowed = AllowedSecrets(secrets, agent=spec.name, allowed=spec.secrets)
    if isinstance(spec, CommandAgentSpec):
        return CommandAgent(spec, secrets=allowed)
    if isinstance(spec, LLMAgentSpec):
        return LLMAgent(
            spec,
            providers=models.providers,
            choices=models.choices,
            tools=tools.select(spec.tools),
            secrets=allowed,
            prices=prices,
            egress=Egress.of(bound, spec.private_networks),
            more_tools=AgentTools(mcp, spec.mcp, spec.mcp_tools) if mcp and spec.mcp else None,
        )
    if isinstance(spec, EchoAgentSpec):
        return EchoAgent(spec)
    raise TypeError(f"no agent kind for {type(spec).__name__}")
