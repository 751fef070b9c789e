"""The deck served to MCP clients (Claude Desktop, Claude Code, an IDE).

`deckops` is what a caller may do (list agents, ask one, runs, approvals, jobs) under
its configured identity and role; `server` speaks MCP over stdio (`agentdeck mcp`)
and streamable HTTP (`[mcp] port`). Only `server` imports the `mcp` SDK.
"""
