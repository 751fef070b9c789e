"""A stdio MCP server (the `mcp` package from PyPI) with one tool, for Claude agents' tests.

Run by the Claude Code CLI as `python tests/mcp_shout_server.py`, as an agent's
`mcp_servers` entry names it.
"""

from __future__ import annotations

from mcp.server.fastmcp import FastMCP

server = FastMCP("shout")


@server.tool()
def shout(words: str) -> str:
    """Say the words in capitals."""
    return words.upper() + "!"


if __name__ == "__main__":
    server.run("stdio")
