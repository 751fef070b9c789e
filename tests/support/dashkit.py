"""Helpers for the dashboard tests: a deck with the dashboard on a free port, HTTP clients."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import unquote

import aiohttp

from bot.app import open_app
from bot.config import Config
from bot.dashboard import Dashboard
from bot.deck import Deck
from bot.intake.actions import Actions
from storage.clock import Clock
from storage.models import Run, RunState
from tests.fakes.chat import ChatRecorder
from tests.support.config import make_config

USERS = """
[[users]]
id = "test:admin"
role = "admin"
[[users]]
id = "test:ada"
role = "operator"
[[users]]
id = "test:bob"
role = "operator"
[[users]]
id = "test:carl"
role = "operator"
[[users]]
id = "test:viewer"
role = "viewer"
"""

AGENTS = """
[deck]
default_agent = "echo"
[[agents]]
name = "echo"
kind = "command"
command = ["echo", "{input}"]
description = "Says it back"
[[agents]]
name = "slow"
kind = "command"
command = ["sh", "-c", "sleep 3; echo slow $0", "{input}"]  # long enough to be seen running
[[agents]]
name = "deploy"
kind = "command"
command = ["echo", "deployed {input}"]
approval = "always"
approvers = ["test:ada", "admin"]
"""

DASHBOARD = """
[dashboard]
enabled = true
port = 0
"""

TIMEOUT = aiohttp.ClientTimeout(total=10)
LINK = re.compile(r"http://127\.0\.0\.1:\d+/signin\?t=[A-Za-z0-9_\-.%]+")
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


def dashboard_config(extra: str = "") -> Config:
    return make_config(USERS + AGENTS + DASHBOARD + extra)


@dataclass
class Dash:
    deck: Deck
    chat: ChatRecorder
    dashboard: Dashboard
    actions: Actions

    @property
    def base(self) -> str:
        return self.dashboard.base_url

    async def link_from_chat(self, user: str) -> str:
        """Ask for a link as a chat user would, and read it from the reply."""
        before = len(self.chat.posted)
        await self.chat.say("/dashboard", user=user, chat=user)
        posted = await self.chat.wait_for("/signin?t=", chat=user)
        assert self.chat.posted.index(posted) >= before
        found = LINK.search(posted.text)
        assert found, posted.text
        return found[0]

    def link_for(self, user: str) -> str:
        """A link as the command would mint it (for identities chat does not give one)."""
        return self.dashboard.link_for(user, user)

    @asynccontextmanager
    async def client(self) -> AsyncIterator[aiohttp.ClientSession]:
        # unsafe: keep cookies for an IP address host (127.0.0.1)
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(self.base, timeout=TIMEOUT, cookie_jar=jar) as session:
            yield session

    @asynccontextmanager
    async def signed_in(self, user: str) -> AsyncIterator[aiohttp.ClientSession]:
        link = await self.link_from_chat(user) if user != "test:viewer" else self.link_for(user)
        async with self.client() as session:
            await redeem(session, link)
            yield session


async def redeem(session: aiohttp.ClientSession, link: str) -> aiohttp.ClientResponse:
    token = link.split("t=", 1)[1]
    response = await session.post("/signin", data={"t": unquote(token)}, allow_redirects=False)
    await response.read()
    return response


async def page(session: aiohttp.ClientSession, path: str, status: int = 200) -> str:
    async with session.get(path, allow_redirects=False) as response:
        body = await response.text()
        assert response.status == status, (path, response.status, body[:500])
        return body


async def status_of(session: aiohttp.ClientSession, path: str) -> int:
    """The HTTP status the dashboard answers `path` with (redirects not followed)."""
    async with session.get(path, allow_redirects=False) as response:
        await response.read()
        return response.status


def csrf_of(body: str) -> str:
    found = CSRF.search(body)
    assert found, body[:500]
    return found[1]


@asynccontextmanager
async def dashboard_deck(
    config: Config | None = None, clock: Clock | None = None
) -> AsyncIterator[Dash]:
    chat = ChatRecorder()
    async with (
        asyncio.timeout(60),
        open_app(config or dashboard_config(), clock=clock, transports=[chat]) as app,
    ):
        assert app.dashboard is not None
        yield Dash(app.deck, chat, app.dashboard, app.actions)


async def make_history(dash: Dash) -> None:
    """Some of everything: finished runs, a job, a decided and a pending approval."""
    chat = dash.chat
    await chat.say("/ask echo good morning", user="test:ada")
    await chat.wait_for("good morning")
    await chat.say("/every 2h echo hourly check", user="test:admin")
    await chat.wait_for("/pause")
    await chat.say("/ask deploy v1", user="test:bob")
    first = await chat.wait_for("Approval needed")
    await chat.press(f"{first.text.split('(')[1][:8]}:deny", user="test:ada")
    await chat.wait_for("Denied by test:ada")
    await chat.say("/ask deploy v3", user="test:bob")
    await chat.wait_for("v3")
    await spend_over_a_week(dash)


async def spend_over_a_week(dash: Dash) -> None:
    """Priced runs of two agents on past days, for the cost chart."""
    now = dash.deck.clock.now()
    async with dash.deck.db.session() as session:
        for day in range(7):
            for agent, cost in (("echo", 0.02 * (day + 1)), ("slow", 0.05 * (7 - day))):
                when = now - timedelta(days=day, hours=1)
                session.add(
                    Run(
                        id=f"{agent}-{day}",
                        agent=agent,
                        chat_id="test:ada",
                        user_id="test:ada",
                        status=RunState.DONE,
                        tokens_in=1000 * (day + 1),
                        cost=cost,
                        started_at=when,
                        finished_at=when + timedelta(seconds=3),
                    )
                )
        await session.commit()
