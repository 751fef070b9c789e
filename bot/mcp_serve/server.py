"""The deck as an MCP server: `agentdeck mcp` (stdio) and `[mcp] port` (streamable HTTP).

Both serve the operations of `bot.mcp_serve.deckops` as MCP tools, through the SDK's
low-level `Server`. Over HTTP (127.0.0.1 by default) each request must carry
`Authorization: Bearer <[mcp] token>`: any local process can reach the port, and the
caller it would act as may be an admin. The HTTP server is uvicorn (the SDK's own
dependency) without its signal handlers: the deck's own handle SIGTERM and Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from bot.deck import Deck
from bot.mcp_serve.deckops import OPERATIONS, DeckOps, OperationRefused
from roster.refs import resolve

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
PATH = "/mcp"


def build_server(ops: DeckOps) -> Server[Any, Any]:
    server: Server[Any, Any] = Server("agentdeck")

    @server.list_tools()  # type: ignore[no-untyped-call,untyped-decorator]
    async def list_tools() -> list[types.Tool]:
        return [
            types.Tool(name=op.name, description=op.description, inputSchema=op.schema)
            for op in OPERATIONS.values()
        ]

    @server.call_tool()  # type: ignore[untyped-decorator]
    async def call_tool(name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        try:
            text = await ops.perform(name, arguments)
        except OperationRefused as exc:
            return _result(str(exc), error=True)
        except Exception:
            log.exception("mcp: %s failed", name)
            return _result(f"{name} failed; the deck's log says why", error=True)
        return _result(ops.deck.vault.redact(text))

    return server


def _result(text: str, *, error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], isError=error)


def caller(deck: Deck) -> DeckOps:
    settings = deck.config.mcp
    return DeckOps(deck, user=settings.user, chat=settings.chat)


async def serve_stdio(deck: Deck) -> None:
    """Serve over this process's stdin/stdout until the client closes stdin."""
    server = build_server(caller(deck))
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers (the deck's decide when to stop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


class HttpListener:
    """`[mcp] port`: streamable HTTP at /mcp, bearer token required; `port` once started."""

    def __init__(self, deck: Deck) -> None:
        self._deck = deck
        settings = deck.config.mcp
        self._token = resolve(settings.token, deck.vault) if settings.token else ""
        self._manager = StreamableHTTPSessionManager(
            app=build_server(caller(deck)), stateless=True, json_response=True
        )
        config = uvicorn.Config(
            self._app,
            host=settings.listen,
            port=settings.port or 0,
            log_level="warning",
            lifespan="off",
            interface="asgi3",
            access_log=False,
            timeout_graceful_shutdown=2,  # an ask_agent still waiting is not waited for
        )
        self._server = QuietServer(config)
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    async def __aenter__(self) -> HttpListener:
        started = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(started), name="mcp-http")
        self.port = await started
        log.info("mcp: serving on %s:%d%s", self._deck.config.mcp.listen, self.port, PATH)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self, started: asyncio.Future[int]) -> None:
        async with self._running():
            serving = asyncio.create_task(self._server.serve(), name="mcp-http-serve")
            # uvicorn has no event for "listening": look, now and then.
            while not self._server.started and not serving.done():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            if serving.done() and not started.done():
                started.set_exception(OSError("the MCP HTTP listener did not start"))
            elif not started.done():
                (sock,) = self._server.servers[0].sockets[:1]
                started.set_result(int(sock.getsockname()[1]))
            await serving

    @contextlib.asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        async with self._manager.run():
            yield

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") != PATH:
            await _plain(send, 404, b"not found")
            return
        if not self._authorised(scope):
            self._deck.audit.record("mcp-http", "refused.unauthorised", PATH)
            await _plain(send, 401, b"a bearer token is required")
            return
        await self._manager.handle_request(scope, receive, send)

    def _authorised(self, scope: Scope) -> bool:
        headers = dict(scope.get("headers") or ())
        given = headers.get(b"authorization", b"").decode("latin-1")
        expected = f"Bearer {self._token}"
        return bool(self._token) and hmac.compare_digest(given.encode(), expected.encode())


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": body})
