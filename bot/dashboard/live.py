"""Pages that update themselves: one watcher, many server-sent event streams.

One task looks at live work once a second (runs in this process, plus a cheap
fingerprint of the database, so runs of other processes show too) and wakes every
open stream when something changed; the page then fetches itself again. Streams are
bounded in number; a browser turned away falls back to slow polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from bot.dashboard.auth import COOKIE
from bot.dashboard.web import AUTH
from bot.runs.runner import Runner
from storage import history
from storage.db import Database

log = logging.getLogger(__name__)

MAX_STREAMS = 32
KEEPALIVE_SECONDS = 15.0
RETRY_MS = 3000


class Pulse:
    """Watches live work; `changed()` waits for the next change (or the end)."""

    def __init__(self, *, db: Database, runner: Runner, every: float = 1.0) -> None:
        self._db = db
        self._runner = runner
        self._every = every
        self._changed = asyncio.Condition()
        self._version = 0
        self._streams = 0
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="dashboard-pulse")

    async def close(self) -> None:
        """End every open stream, then the watcher."""
        self._closed = True
        async with self._changed:
            self._changed.notify_all()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _watch(self) -> None:
        last: tuple[object, ...] | None = None
        while True:
            await asyncio.sleep(self._every)
            if not self._streams:
                continue  # nobody is looking: no queries
            try:
                now = await self._fingerprint()
            except Exception:  # the database may be briefly away; look again later
                log.exception("the dashboard could not look at live work")
                continue
            if now != last:
                last = now
                async with self._changed:
                    self._version += 1
                    self._changed.notify_all()

    async def _fingerprint(self) -> tuple[object, ...]:
        active = tuple(sorted(self._runner.active()))
        return (active, *await history.pulse(self._db))

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """GET /events: `changed` events while the page is open."""
        if await request.app[AUTH].viewer(request.cookies.get(COOKIE)) is None:
            raise web.HTTPUnauthorized(text="sign in first")
        if self._streams >= MAX_STREAMS or self._closed:
            raise web.HTTPServiceUnavailable(text="too many live pages; polling instead")
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        self._streams += 1
        try:
            await response.write(f"retry: {RETRY_MS}\n\n".encode())
            await self._relay(response)
        except ConnectionResetError:
            pass  # the page went away
        finally:
            self._streams -= 1
        return response

    async def _relay(self, response: web.StreamResponse) -> None:
        seen = self._version
        while not self._closed:
            if await self._next(seen):
                seen = self._version
                await response.write(f"event: changed\ndata: {seen}\n\n".encode())
            elif not self._closed:
                await response.write(b": keep-alive\n\n")

    async def _next(self, seen: int) -> bool:
        """Wait for a version after `seen`; False after a quiet while (or at the end)."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KEEPALIVE_SECONDS):
                    await self._changed.wait_for(lambda: self._version != seen or self._closed)
            return self._version != seen and not self._closed
