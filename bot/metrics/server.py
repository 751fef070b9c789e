"""The metrics endpoint: `GET /metrics` in Prometheus' text format, on its own aiohttp site.

Off unless `[metrics] enabled = true`; it listens on 127.0.0.1 by default, as the
figures (agent names, queue sizes) are for the operator's monitoring, not the public.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.deck import Deck
from bot.errors import BotError
from bot.metrics.collect import DeckMetrics, ErrorCounter
from storage.db import DATABASE_ERRORS

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 5.0  # a scrape never hangs on a stuck database


class MetricsStartError(BotError):
    def __init__(self, address: str, reason: str) -> None:
        super().__init__(
            f"The metrics endpoint cannot listen on {address}: {reason}. "
            "Change [metrics] listen/port, or stop what uses it."
        )


class MetricsServer:
    """`async with MetricsServer(deck)`: counting and serving until the block ends."""

    def __init__(self, deck: Deck) -> None:
        self._deck = deck
        self._settings = deck.config.metrics
        self.metrics = DeckMetrics()
        self._errors = ErrorCounter(self.metrics)
        self._runner: web.AppRunner | None = None
        self._unobserve: Callable[[], None] = _nothing
        self.port = self._settings.port

    @property
    def url(self) -> str:
        host = self._settings.listen
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/metrics"

    async def __aenter__(self) -> MetricsServer:
        app = web.Application()
        app.router.add_get("/metrics", self._scrape)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._settings.listen, self._settings.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            address = f"{self._settings.listen}:{self._settings.port}"
            raise MetricsStartError(address, exc.strerror or str(exc)) from None
        self.port = int(self._runner.addresses[0][1])
        self._unobserve = self._deck.audit.observe(self.metrics.on_audit)
        logging.getLogger().addHandler(self._errors)
        log.info("metrics at %s", self.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self._errors)
        self._unobserve()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _scrape(self, _request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(SAMPLE_SECONDS):
                await self.metrics.sample(self._deck)
        except (*DATABASE_ERRORS, TimeoutError) as exc:
            # The counters still tell; the queue gauges keep their last values.
            log.warning("metrics: sampling the queues failed: %s", exc)
        body = await asyncio.to_thread(generate_latest, self.metrics.registry)  # reads /proc
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _nothing() -> None:
    return None
