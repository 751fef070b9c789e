"""`[[mcp_servers]]`: one MCP server, how to reach it, and its tools' default policy.

A server is either a command (stdio: an argv, its `env` built like a command agent's:
the allowlist plus what is declared here, `env:`/`secret:` references resolved at
start) or a `url` (streamable HTTP, its `headers` may be references too). Nothing else
of the bot's environment reaches it. Its tools need approval unless a
`[tool_policy."<server>__<tool>"]` says otherwise: an MCP tool can do anything.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from roster.spec import BOTS_OWN_PREFIX, ApprovalMode, Policy, Strict

SERVER_NAME = r"^[a-z][a-z0-9-]{0,29}$"  # no "_": `__` separates server and tool
SEPARATOR = "__"


class McpServerSpec(Strict):
    name: str = Field(pattern=SERVER_NAME)
    command: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    # The default policy of its tools ("always": they can do anything); a
    # `[tool_policy."<server>__<tool>"]` table overrides it for one tool.
    approval: ApprovalMode = ApprovalMode.ALWAYS
    approvers: tuple[str, ...] = ("admin",)
    # A tool call's limit; a server that does not answer by then is a tool error.
    timeout: float = Field(default=60, gt=0)
    # How long starting (the process, the MCP handshake, the tool list) may take.
    start_timeout: float = Field(default=30, gt=0)

    @field_validator("command", mode="before")
    @classmethod
    def _one_string_is_one_word_list(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_way_to_reach_it(self) -> McpServerSpec:
        if bool(self.command) == bool(self.url):
            raise ValueError("an MCP server needs either `command` (stdio) or `url` (HTTP)")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError("url: an http:// or https:// address of a streamable HTTP server")
        if self.url is not None and self.env:
            raise ValueError("env: only a command server has an environment (use headers)")
        if self.command and self.headers:
            raise ValueError("headers: only a url server takes headers (use env)")
        return self

    @model_validator(mode="after")
    def _env_holds_nothing_of_the_bots_own(self) -> McpServerSpec:
        for key, value in self.env.items():
            if key.startswith(BOTS_OWN_PREFIX) or value.startswith(f"env:{BOTS_OWN_PREFIX}"):
                raise ValueError(
                    f"env.{key}: {BOTS_OWN_PREFIX}* variables are the bot's own and are "
                    "never passed to a child; remove it"
                )
        return self

    @property
    def policy(self) -> Policy:
        """The policy of this server's tools that have no `[tool_policy]` of their own."""
        return Policy(approval=self.approval, approvers=self.approvers)

    @property
    def transport(self) -> str:
        return "stdio" if self.command else "http"


def tool_name(server: str, tool: str) -> str:
    return f"{server}{SEPARATOR}{tool}"


def server_of(name: str) -> str:
    """`"time__get_current_time"` -> `"time"`; "" when `name` is no MCP tool name."""
    server, sep, tool = name.partition(SEPARATOR)
    return server if sep and tool else ""
