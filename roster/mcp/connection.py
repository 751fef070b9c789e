"""One MCP server session: started on first use, shared, restarted when it dies, stopped.

The SDK's transports (`stdio_client`, `streamable_http_client`) and `ClientSession` are
anyio task groups, which must be entered and left by one task: each connection keeps
them in a long-lived task of its own (`_supervise`), and calls from any run use the
session it holds. Reading goes through a relay (`_relay`) so that the end of the
server's output (a stdio server that exited or crashed) is seen at once: pending calls
fail with "connection closed" and the server is started again after a backoff that
doubles up to `BACKOFF_CAP` and starts over once a life lasted `STABLE_SECONDS`.

A start that fails is reported to the calls waiting for it; the next call after the
backoff tries again (the server is not restarted in a loop when it cannot start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from asyncio import FIRST_COMPLETED
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import ClientSession, McpError, StdioServerParameters, types
from mcp.client.stdio import DEFAULT_INHERITED_ENV_VARS, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.message import SessionMessage

from roster.errors import McpServerDown, ToolError
from roster.mcp.spec import McpServerSpec

log = logging.getLogger(__name__)

BACKOFF_START = 0.5
BACKOFF_CAP = 30.0
STABLE_SECONDS = 60.0  # a life this long resets the backoff (a crash loop keeps doubling it)
STOP_SECONDS = 5.0
# On top of the server's own call timeout: the SDK's deadline fires first; this one only
# guards against a session that cannot even deliver its timeout.
GUARD_SECONDS = 2.0
TIMED_OUT = 408  # the SDK's error code for a request that got no answer in time

Settings = Callable[[], dict[str, str]]  # the resolved env (stdio) or headers (HTTP)
Incoming = SessionMessage | Exception


class Connection:
    """One configured server; `call` and `list_tools` start it when it is not running."""

    def __init__(self, spec: McpServerSpec, *, settings: Settings) -> None:
        self.spec = spec
        self._settings = settings
        self._task: asyncio.Task[None] | None = None
        self._attempt: asyncio.Future[ClientSession] | None = None
        self._down = asyncio.Event()
        self._closing = False
        self._delay = BACKOFF_START
        self._retry_at = 0.0
        self._failure = ""
        self.tools: tuple[types.Tool, ...] = ()
        self.starts = 0  # how many times it was started (a restart counts)

    @property
    def running(self) -> bool:
        attempt = self._attempt
        return attempt is not None and attempt.done() and not attempt.exception()

    async def list_tools(self) -> tuple[types.Tool, ...]:
        await self._session()
        return self.tools

    async def call(self, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        """Call one tool; a dead, hung or failing server is a `ToolError` that says so."""
        session = await self._session()
        down = self._down  # this life's: set when the server's output ends
        limit = self.spec.timeout
        calling = asyncio.ensure_future(
            session.call_tool(tool, arguments, read_timeout_seconds=timedelta(seconds=limit))
        )
        dying = asyncio.ensure_future(down.wait())
        try:
            await asyncio.wait(
                (calling, dying), timeout=limit + GUARD_SECONDS, return_when=FIRST_COMPLETED
            )
        finally:
            dying.cancel()
            if not calling.done():
                calling.cancel()
                await asyncio.gather(calling, return_exceptions=True)
        if calling.cancelled():
            if down.is_set():
                raise McpServerDown(self.spec.name, "stopped during the call")
            raise ToolError(f"{self.spec.name}: no answer within {limit:g} s")
        return self._result(calling, session)

    def _result(
        self, calling: asyncio.Future[types.CallToolResult], session: ClientSession
    ) -> types.CallToolResult:
        limit = self.spec.timeout
        try:
            return calling.result()
        except McpError as exc:
            if exc.error.code == types.CONNECTION_CLOSED:
                self._died(session)
                raise McpServerDown(self.spec.name, "stopped during the call") from None
            if exc.error.code == TIMED_OUT:
                raise ToolError(f"{self.spec.name}: no answer within {limit:g} s") from None
            raise ToolError(f"{self.spec.name}: {exc.error.message}") from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
            self._died(session)
            raise McpServerDown(self.spec.name, "its connection is closed") from None
        except (RuntimeError, ValueError) as exc:  # e.g. a result that breaks its own schema
            raise ToolError(f"{self.spec.name}: {exc}") from None

    async def close(self) -> None:
        """Stop the server (stdio: close its input, then TERM/KILL its process group)."""
        self._closing = True
        self._down.set()
        task = self._task
        if task is not None and not task.done():
            try:
                async with asyncio.timeout(STOP_SECONDS):
                    await asyncio.shield(task)
            except TimeoutError:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        attempt = self._attempt
        if attempt is not None and not attempt.done():  # no call waits for a start forever
            attempt.set_exception(McpServerDown(self.spec.name, "the deck is stopping"))
            attempt.exception()

    # --- starting -------------------------------------------------------------------

    async def _session(self) -> ClientSession:
        if self._closing:
            raise McpServerDown(self.spec.name, "the deck is stopping")
        if self._task is None or self._task.done():
            self._launch()
        attempt = self._attempt
        assert attempt is not None
        try:
            async with asyncio.timeout(self.spec.start_timeout + BACKOFF_CAP):
                return await asyncio.shield(attempt)
        except TimeoutError:
            raise McpServerDown(self.spec.name, "did not start in time") from None

    def _launch(self) -> None:
        loop = asyncio.get_running_loop()
        self._attempt = loop.create_future()
        wait = self._retry_at - loop.time()
        if wait > 0:  # the last start failed a moment ago: say so, do not spawn again yet
            self._attempt.set_exception(
                McpServerDown(self.spec.name, f"{self._failure}; trying again in {wait:.0f} s")
            )
            self._attempt.exception()  # retrieved: no "never retrieved" warning
            self._task = None
            return
        self._task = asyncio.create_task(self._supervise(), name=f"mcp:{self.spec.name}")

    async def _supervise(self) -> None:
        """Serve until closed; after a death start again (backoff), after a failed start stop."""
        loop = asyncio.get_running_loop()
        while True:
            attempt = self._attempt
            assert attempt is not None
            born = loop.time()
            served = await self._serve(attempt)
            if self._closing:
                return
            if served and loop.time() - born >= STABLE_SECONDS:
                self._delay = BACKOFF_START  # it ran well a while: a new death starts over
            self._retry_at = loop.time() + self._delay
            if not served:
                self._delay = min(self._delay * 2, BACKOFF_CAP)
                return
            log.warning("mcp server %s stopped; starting it again", self.spec.name)
            if self._attempt is attempt:
                self._attempt = loop.create_future()  # calls from now on wait for the restart
            await asyncio.sleep(self._delay)
            self._delay = min(self._delay * 2, BACKOFF_CAP)

    async def _serve(self, attempt: asyncio.Future[ClientSession]) -> bool:
        """One life of the server; True when it started (and later died or was closed)."""
        self._down = asyncio.Event()
        if self._closing:
            self._down.set()
        started = False
        try:
            async with self._open() as session:
                started = True
                self.starts += 1
                attempt.set_result(session)
                await self._down.wait()
        except Exception as exc:  # any failure of a server is reported, not raised
            self._failure = _why(exc)
            if not started:
                log.warning("mcp server %s did not start: %s", self.spec.name, self._failure)
        if not attempt.done():
            attempt.set_exception(McpServerDown(self.spec.name, self._failure or "stopped"))
            attempt.exception()
        return started

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[ClientSession]:
        async with self._transport() as (read, write), anyio.create_task_group() as relays:
            sink, source = anyio.create_memory_object_stream[Incoming](0)
            relays.start_soon(self._relay, read, sink)
            async with sink, source, ClientSession(source, write) as session:
                with anyio.fail_after(self.spec.start_timeout):
                    await session.initialize()
                    self.tools = await _all_tools(session)
                yield session
            relays.cancel_scope.cancel()

    @contextlib.asynccontextmanager
    async def _transport(
        self,
    ) -> AsyncIterator[tuple[MemoryObjectReceiveStream[Incoming], MemoryObjectSendStream[Any]]]:
        settings = self._settings()  # references resolved now: a new secret value is used
        if self.spec.url is None:
            params = StdioServerParameters(
                command=self.spec.command[0],
                args=list(self.spec.command[1:]),
                env=_exactly(settings),
                cwd=self.spec.cwd,
            )
            with _quiet() as errlog:  # its stderr may print what it was given: not ours
                async with stdio_client(params, errlog=errlog) as (read, write):
                    yield read, write
        else:
            client = create_mcp_http_client(headers=settings)
            async with (
                client,
                streamable_http_client(self.spec.url, http_client=client) as (
                    read,
                    write,
                    _,
                ),
            ):
                yield read, write

    async def _relay(
        self, source: MemoryObjectReceiveStream[Incoming], sink: MemoryObjectSendStream[Incoming]
    ) -> None:
        """Pass the server's messages on; their end (the server is gone) ends this life."""
        async with source, sink:
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                async for item in source:
                    await sink.send(item)
        self._mark_down()

    def _died(self, session: ClientSession) -> None:
        if self._live_session() is session:
            self._mark_down()

    def _live_session(self) -> ClientSession | None:
        attempt = self._attempt
        if attempt is None or not attempt.done() or attempt.exception():
            return None
        return attempt.result()

    def _mark_down(self) -> None:
        """This life is over: calls from now on wait for the next start."""
        self._down.set()
        if not self._closing and self._live_session() is not None:
            self._attempt = asyncio.get_running_loop().create_future()


def _exactly(env: dict[str, str]) -> dict[str, str]:
    """`env` as the child's whole environment: the SDK adds a few of the bot's variables
    (HOME, PATH, USER...) under the given ones; one the allowlist left out (its value
    holds a credential) is given here as empty, so the SDK's copy does not come back."""
    blanked = {name: "" for name in DEFAULT_INHERITED_ENV_VARS if name in os.environ}
    return {**blanked, **env}


async def _all_tools(session: ClientSession) -> tuple[types.Tool, ...]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    while True:
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        tools += page.tools
        cursor = page.nextCursor
        if not cursor:
            return tuple(tools)


@contextlib.contextmanager
def _quiet() -> Any:
    """A file that swallows what it is given (the server's stderr)."""
    fd = os.open(os.devnull, os.O_WRONLY)
    with os.fdopen(fd, "w") as sink:
        yield sink


def _why(exc: BaseException) -> str:
    """A short reason from what may be an exception group of the SDK's task groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, FileNotFoundError):
        return f"command not found: {exc.filename}"
    if isinstance(exc, TimeoutError):
        return "no answer to the MCP handshake in time"
    if isinstance(exc, McpError):
        return exc.error.message
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:199] + "…"
