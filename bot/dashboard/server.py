"""The dashboard's lifecycle: an aiohttp server inside the bot's process and event loop."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.commands.dashboard import SIGNIN
from bot.config import Config
from bot.dashboard.auth import Auth
from bot.dashboard.errors import DashboardStartError
from bot.dashboard.live import Pulse
from bot.dashboard.pages import approvals, audit, cost, jobs, overview, runs
from bot.dashboard.routes import table
from bot.dashboard.throttle import SignInThrottle
from bot.dashboard.tokens import Signer, load_key
from bot.dashboard.web import (
    AUDIT,
    AUTH,
    FLASH,
    SETTINGS,
    TEMPLATES,
    THROTTLE,
    environment,
    not_found_page,
    security_headers,
)
from bot.deck import Deck
from bot.intake.actions import Actions
from storage.signin_links import RevokedSessions, UsedLinks

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
SHUTDOWN_SECONDS = 3.0
SWEEP_SECONDS = 1.0  # how soon after its window a flood of bad tokens is summed up


class Dashboard:
    """`async with Dashboard(deck, actions)`: listening until the block ends.

    The deck stops here: each page is given the parts it uses (`_give_pages`).
    """

    def __init__(self, deck: Deck, actions: Actions, *, pulse_seconds: float = 1.0) -> None:
        self._deck = deck
        self._actions = actions
        self._settings = deck.config.dashboard
        self._pulse = Pulse(db=deck.db, runner=deck.runner, every=pulse_seconds)
        self._runner: web.AppRunner | None = None
        self._auth: Auth | None = None
        self._throttle = SignInThrottle(audit=deck.audit, clock=deck.clock)
        self._sweeper: asyncio.Task[None] | None = None
        self.port = self._settings.port

    @property
    def base_url(self) -> str:
        """Where operators open it: `public_url`, else the address it listens on."""
        if self._settings.public_url:
            return self._settings.public_url.rstrip("/")
        host = self._settings.listen
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def auth(self) -> Auth:
        if self._auth is None:
            raise RuntimeError("the dashboard is not started")
        return self._auth

    def link_for(self, user: str, chat: str) -> str:
        """A one-time sign-in link for a chat identity (the `/dashboard` command)."""
        return self.auth.link(self.base_url, user, chat)

    async def __aenter__(self) -> Dashboard:
        deck = self._deck
        key = await asyncio.to_thread(load_key, deck.config.deck.data_path())
        self._auth = Auth(
            signer=Signer(key),
            used=UsedLinks(deck.db),
            revoked=RevokedSessions(deck.db),
            access=deck.access,
            audit=deck.audit,
            clock=deck.clock,
            settings=self._settings,
        )
        await self._auth.prune()
        deck.postman.mint(SIGNIN, self.link_for)  # the links /dashboard replies carry
        self._runner = web.AppRunner(
            self._app(), access_log=None, shutdown_timeout=SHUTDOWN_SECONDS
        )
        await self._runner.setup()
        await self._listen(self._runner)
        self._pulse.start()
        self._sweeper = asyncio.create_task(self._sweep(), name="dashboard-throttle")
        log.info("dashboard at %s", self.base_url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._pulse.close()  # open event streams end first, so the server stops at once
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        self._throttle.sweep(everything=True)  # counts not written yet go into the audit

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            self._throttle.sweep()

    async def _listen(self, runner: web.AppRunner) -> None:
        site = web.TCPSite(runner, self._settings.listen, self._settings.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            address = f"{self._settings.listen}:{self._settings.port}"
            raise DashboardStartError(address, exc.strerror or str(exc)) from None
        self.port = int(runner.addresses[0][1])

    def _app(self) -> web.Application:
        # Access logs are off: a sign-in link's token travels in the query string.
        app = web.Application(
            middlewares=[security_headers, not_found_page], client_max_size=64 * 1024
        )
        app[AUDIT] = self._deck.audit
        app[SETTINGS] = self._settings
        self._give_pages(app)
        app[AUTH] = self.auth
        app[THROTTLE] = self._throttle
        app[TEMPLATES] = environment(ZoneInfo(self._deck.config.deck.timezone))
        app[FLASH] = {}
        app.router.add_routes(table())
        app.router.add_get("/events", self._pulse.stream)
        app.router.add_static("/static", STATIC)
        return app

    def _give_pages(self, app: web.Application) -> None:
        """Each page module the deck's parts it uses (its `Parts`), never the deck."""
        deck = self._deck

        def current() -> Config:
            return deck.config  # a reload replaces it: asked each time

        spending = cost.Parts(config=current, clock=deck.clock, runner=deck.runner, db=deck.db)
        app[cost.PARTS] = spending
        app[approvals.PARTS] = approvals.Parts(
            approvals=deck.approvals,
            db=deck.db,
            postman=deck.postman,
            audit=deck.audit,
            access=deck.access,
            roster=deck.roster,
            mcp=deck.mcp,
            actions=self._actions,
        )
        app[audit.PARTS] = audit.Parts(runner=deck.runner, db=deck.db, audit=deck.audit)
        app[jobs.PARTS] = jobs.Parts(
            scheduler=deck.scheduler, runner=deck.runner, db=deck.db, audit=deck.audit
        )
        app[overview.PARTS] = overview.Parts(
            runner=deck.runner,
            scheduler=deck.scheduler,
            roster=deck.roster,
            db=deck.db,
            approvals=deck.approvals,
            postman=deck.postman,
            started_at=deck.started_at,
            spending=spending,
        )
        app[runs.PARTS] = runs.Parts(
            config=current,
            runner=deck.runner,
            db=deck.db,
            roster=deck.roster,
            redact=deck.vault.redact,
        )
