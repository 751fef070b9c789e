"""Every configured MCP server, each started when an agent first needs its tools.

The pool is shared by the agents: one connection per server, whatever the number of
agents listing it. Each agent sees the pool through `AgentTools`, which offers the
tools of the servers its `mcp` list names, narrowed by its `mcp_tools`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from roster.children import child_environment
from roster.errors import McpServerDown
from roster.mcp.spec import McpServerSpec, server_of, tool_name
from roster.mcp.tool import FUNCTION_NAME, McpTool
from roster.refs import SecretSource, resolve
from roster.spec import Policy
from roster.tools import Tool

if TYPE_CHECKING:
    from roster.mcp.connection import Connection

log = logging.getLogger(__name__)


class McpPool:
    def __init__(
        self,
        specs: Iterable[McpServerSpec],
        *,
        policies: Mapping[str, Policy],
        secrets: SecretSource,
        redact: Callable[[str], str],
    ) -> None:
        self._secrets = secrets
        self._redact = redact
        self._policies = dict(policies)
        self._specs = {spec.name: spec for spec in specs}
        self._connections: dict[str, Connection] = {}
        self._tools: dict[str, dict[str, McpTool]] = {}  # per server, by agentdeck name
        self._listed: dict[str, int] = {}  # per server: the `starts` its tools are of

    def names(self) -> list[str]:
        return list(self._specs)

    def spec(self, server: str) -> McpServerSpec:
        return self._specs[server]

    def connection(self, server: str) -> Connection:
        """The server's connection (not started until used)."""
        found = self._connections.get(server)
        if found is None:
            from roster.mcp.connection import Connection

            spec = self._specs[server]
            found = Connection(spec, settings=lambda: self._settings(spec))
            self._connections[server] = found
        return found

    async def tools(self, server: str) -> dict[str, McpTool]:
        """The server's tools, starting it if it is not running (`McpServerDown` if it fails)."""
        connection = self.connection(server)
        await connection.list_tools()
        if self._listed.get(server) != connection.starts:  # listed again at each start
            self._tools[server] = self._adapt(connection)
            self._listed[server] = connection.starts
        return self._tools[server]

    def known(self, server: str) -> dict[str, McpTool]:
        """The tools last listed by the server; empty while it never started."""
        return self._tools.get(server, {})

    def destructive(self, name: str) -> bool:
        """Whether a tool of a configured server may destroy (its `destructiveHint`); a
        tool not listed yet in this process counts as such: confirming costs one click."""
        server = server_of(name)
        if server not in self._specs:
            return False
        tool = self.known(server).get(name)
        return tool is None or tool.destructive

    async def close(self) -> None:
        connections = list(self._connections.values())
        self._connections.clear()
        await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)

    def replace(self, specs: Iterable[McpServerSpec], policies: Mapping[str, Policy]) -> None:
        """A config reload: servers whose entry changed (or went) are stopped, in the
        background; the others keep running. Policies apply from the next listing."""
        self._policies = dict(policies)
        new = {spec.name: spec for spec in specs}
        for name, connection in list(self._connections.items()):
            if new.get(name) != connection.spec:
                del self._connections[name]
                self._tools.pop(name, None)
                stopping = asyncio.get_running_loop().create_task(connection.close())
                stopping.add_done_callback(lambda _: None)
        self._specs = new
        self._listed.clear()

    def _adapt(self, connection: Connection) -> dict[str, McpTool]:
        spec = connection.spec
        adapted: dict[str, McpTool] = {}
        for listed in connection.tools:
            name = tool_name(spec.name, listed.name)
            if not FUNCTION_NAME.match(name):
                log.warning("mcp server %s: tool %r skipped (not a valid name)", spec.name, name)
                continue
            policy = self._policies.get(name, spec.policy)
            adapted[name] = McpTool(connection, listed, name=name, policy=policy)
        for name in self._policies:
            if server_of(name) == spec.name and name not in adapted:
                log.warning("tool_policy.%s: server %s has no such tool", name, spec.name)
        return adapted

    def _settings(self, spec: McpServerSpec) -> dict[str, str]:
        """Its env (the children's allowlist plus its own) or headers, references resolved."""
        if spec.url is not None:
            return {key: resolve(value, self._secrets) for key, value in spec.headers.items()}
        declared = {key: resolve(value, self._secrets) for key, value in spec.env.items()}
        return child_environment(declared, redact=self._redact)


class AgentTools:
    """The MCP tools one agent is offered: its servers' tools, narrowed by `mcp_tools`."""

    def __init__(self, pool: McpPool, servers: Iterable[str], only: Iterable[str] = ()) -> None:
        self._pool = pool
        self._servers = tuple(servers)
        self._only = frozenset(only)

    @property
    def servers(self) -> tuple[str, ...]:
        return self._servers

    async def refresh(self) -> list[str]:
        """Start the servers not running; what could not be started, in words."""
        problems = []
        for server in self._servers:
            try:
                await self._pool.tools(server)
            except McpServerDown as exc:
                problems.append(str(exc))
        return problems

    def current(self) -> dict[str, Tool]:
        tools: dict[str, Tool] = {}
        for server in self._servers:
            for name, tool in self._pool.known(server).items():
                if not self._only or name in self._only:
                    tools[name] = tool
        return tools
