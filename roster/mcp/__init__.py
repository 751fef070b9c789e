"""MCP: tools from Model Context Protocol servers, under the deck's approval policy.

`spec` is the `[[mcp_servers]]` entry, `connection` one running server session (the
official `mcp` SDK, started on first use, restarted with backoff when it dies), `pool`
every configured server, `tool` a server's tool as a roster `Tool` named
`<server>__<tool>`, `content` what a tool result becomes for the model. Only this
package (and `bot.mcp_serve`, which serves the deck itself over MCP) imports `mcp`.
"""
