"""The HTTP side of triggers: `POST <path>` routes on an aiohttp application.

They are mounted on the Telegram webhook's listener when the deck has one (one port to
expose), else served by a listener of their own (`[webhooks]`, 127.0.0.1 by default).
An unknown path is aiohttp's 404, another method its 405; a body over
`[webhooks] max_body_bytes` is 413 before any of it is verified or stored.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from bot.trigger_spec import TriggerEntry, WebhooksSection
from bot.triggers.service import Triggers

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)

# What the Telegram webhook's listener calls with its application, to add routes to it.
WebhookRoutes = Callable[[Any], None]

TOO_LARGE = 413
CHUNK = 65_536


def mount(app: web.Application, *, triggers: Triggers, limit: int) -> None:
    """Add one POST route per trigger to `app`."""
    for path, trigger in triggers.by_path().items():
        app.router.add_post(path, _handler(triggers, trigger, limit))


Handler = Callable[["web.Request"], Awaitable["web.Response"]]


def _handler(triggers: Triggers, trigger: TriggerEntry, limit: int) -> Handler:
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        body = await _body(request, limit)
        if body is None:
            log.warning(
                "trigger %s: a body over %d bytes from %s", trigger.name, limit, request.remote
            )
            error = {"error": f"the body is larger than {limit} bytes"}
            return web.json_response(error, status=TOO_LARGE)
        answer = await triggers.receive(trigger, request.headers, body, request.remote or "?")
        return web.json_response(answer.body, status=answer.status)

    return handle


async def _body(request: web.Request, limit: int) -> bytes | None:
    """The body, or None when it is (or says it is) over `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(CHUNK):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class TriggerListener:
    """Triggers on a listener of their own (no Telegram webhook to share)."""

    def __init__(self, triggers: Triggers, settings: WebhooksSection) -> None:
        self._triggers = triggers
        self._settings = settings
        self._runner: web.AppRunner | None = None
        self.port = settings.port

    async def __aenter__(self) -> TriggerListener:
        from aiohttp import web

        app = web.Application()
        mount(app, triggers=self._triggers, limit=self._settings.max_body_bytes)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._settings.listen, self._settings.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])  # the port given, or the one picked
        log.info("triggers listen on %s:%d", self._settings.listen, self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
