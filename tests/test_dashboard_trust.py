"""Attacks on the dashboard's sign-in, over real HTTP: a cookie kept after signing out,
a flood of bad tokens, tokens and cookies that are not ASCII."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from sqlmodel import select

from bot.dashboard import throttle
from bot.dashboard.auth import COOKIE
from storage.clock import FakeClock
from storage.db import Database, sqlite_url
from storage.models import AuditEvent
from storage.signin_links import RevokedSessions
from tests.support.config import make_config
from tests.support.dashkit import (
    AGENTS,
    DASHBOARD,
    TIMEOUT,
    USERS,
    Dash,
    csrf_of,
    dashboard_config,
    dashboard_deck,
    page,
    redeem,
    status_of,
)
from tests.support.waiting import eventually


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


async def _session_cookie(dash: Dash, user: str) -> tuple[str, str]:
    """Sign in; the session cookie's value and the page's form token."""
    async with dash.client() as client:
        await redeem(client, dash.link_for(user))
        body = await page(client, "/")
        cookie = next(c.value for c in client.cookie_jar if c.key == COOKIE)
        return cookie, csrf_of(body)


@asynccontextmanager
async def with_cookie(base: str, cookie: str) -> AsyncIterator[aiohttp.ClientSession]:
    """A client that sends a saved cookie, as an attacker who copied it would."""
    headers = {"Cookie": f"{COOKIE}={cookie}"}
    async with aiohttp.ClientSession(base, timeout=TIMEOUT, headers=headers) as session:
        yield session


async def _sign_out(base: str, cookie: str, csrf: str) -> None:
    async with with_cookie(base, cookie) as client:
        done = await client.post("/signout", data={"csrf": csrf}, allow_redirects=False)
        assert done.status == 303


# --- signing out ------------------------------------------------------------------------


async def test_a_signed_out_cookie_stays_dead_after_a_restart() -> None:
    config = dashboard_config()
    async with dashboard_deck(config) as dash:
        cookie, csrf = await _session_cookie(dash, "test:ada")
        other, _ = await _session_cookie(dash, "test:ada")  # a second session of the same person
        await _sign_out(dash.base, cookie, csrf)
        async with with_cookie(dash.base, cookie) as copied:
            assert await status_of(copied, "/") == 401
            refused = await copied.post("/signout", data={"csrf": csrf}, allow_redirects=False)
            assert refused.status == 401
            assert (await copied.get("/events")).status == 401
        async with with_cookie(dash.base, other) as still:
            await page(still, "/")  # only the session that signed out ended
    async with dashboard_deck(config) as dash:  # the same data directory, a new process
        async with with_cookie(dash.base, cookie) as copied:
            assert await status_of(copied, "/") == 401
        async with with_cookie(dash.base, other) as still:
            await page(still, "/")


async def test_signing_out_ends_the_session_in_every_process(pg_url: str) -> None:
    config = make_config(
        USERS + AGENTS.replace("[deck]\n", f'[deck]\ndatabase_url = "{pg_url}"\n') + DASHBOARD
    )
    async with dashboard_deck(config) as first, dashboard_deck(config) as second:
        cookie, csrf = await _session_cookie(first, "test:ada")
        async with with_cookie(second.base, cookie) as there:
            await page(there, "/")  # one key in the data directory: valid in both
        await _sign_out(first.base, cookie, csrf)
        async with with_cookie(second.base, cookie) as there:
            assert await status_of(there, "/") == 401


async def test_revoked_sessions_are_forgotten_once_they_expired() -> None:
    clock = FakeClock()
    async with dashboard_deck(clock=clock) as dash:
        cookie, csrf = await _session_cookie(dash, "test:ada")
        await _sign_out(dash.base, cookie, csrf)
        revoked = RevokedSessions(dash.deck.db)
        assert await revoked.count() == 1
        clock.advance(timedelta(hours=12, seconds=1))  # the session's own end
        await revoked.prune(clock.now())
        assert await revoked.count() == 0
        async with with_cookie(dash.base, cookie) as copied:
            assert await status_of(copied, "/") == 401  # expired anyway


# --- a flood of bad tokens --------------------------------------------------------------


async def _refusal_rows(dash: Dash) -> list[AuditEvent]:
    await dash.deck.runner.flush()
    async with dash.deck.db.session() as session:
        rows = (await session.exec(select(AuditEvent))).all()
    return [r for r in rows if r.action.startswith("dashboard.signin_refused")]


async def test_bad_tokens_are_audited_once_per_window_and_then_summed_up() -> None:
    clock = FakeClock()
    async with dashboard_deck(clock=clock) as dash, dash.client() as client:
        statuses = []
        for n in range(60):
            response = await client.post("/signin", data={"t": f"forged-{n}.x"})
            statuses.append(response.status)
            looked = await client.get(f"/signin?t=forged-{n}")
            statuses.append(looked.status)
        assert set(statuses[: throttle.LIMIT]) == {403}
        assert set(statuses[throttle.LIMIT :]) == {429}
        rows = await _refusal_rows(dash)
        assert [r.action for r in rows] == ["dashboard.signin_refused"]
        assert rows[0].detail["address"] == "127.0.0.1"
        # a good link still signs in from the same address while it is throttled
        good = await redeem(client, await dash.link_from_chat("test:ada"))
        assert good.status == 303
        clock.advance(timedelta(seconds=throttle.WINDOW_SECONDS))
        summary = await eventually(lambda: _summary(dash))
        assert summary.detail == {"address": "127.0.0.1", "count": 119, "seconds": 60.0}
        again = await client.post("/signin", data={"t": "forged-again.x"})
        assert again.status == 403  # a new window
        assert len(await _refusal_rows(dash)) == 3


async def _summary(dash: Dash) -> AuditEvent | None:
    rows = await _refusal_rows(dash)
    return next((r for r in rows if r.action == "dashboard.signin_refused.repeated"), None)


async def test_counts_not_summed_up_yet_are_written_at_stop(data_dir: Path) -> None:
    async with dashboard_deck(clock=FakeClock()) as dash, dash.client() as client:
        for n in range(3):
            await client.post("/signin", data={"t": f"forged-{n}.x"})
    async with Database(sqlite_url(data_dir)) as db, db.session() as session:
        rows = (await session.exec(select(AuditEvent))).all()
    summary = [r.detail["count"] for r in rows if r.action == "dashboard.signin_refused.repeated"]
    assert summary == [2]


# --- not ASCII ----------------------------------------------------------------------------


async def test_non_ascii_tokens_cookies_and_form_tokens_get_403_not_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with dashboard_deck() as dash:
        async with dash.client() as client:
            for token in ("é.é", "abc.ü", "ü", "x" * 10 + ".\u2028"):
                response = await client.post("/signin", data={"t": token})
                assert response.status == 403, token
                looked = await client.get(f"/signin?t={quote(token)}")
                assert looked.status == 403, token
        async with with_cookie(dash.base, quote("ä.ö")) as client:
            assert await status_of(client, "/") == 401
        raw = {"Cookie": f"{COOKIE}=" + "ä.ö".encode().decode("latin-1")}
        async with aiohttp.ClientSession(dash.base, timeout=TIMEOUT, headers=raw) as client:
            assert await status_of(client, "/") == 401
        cookie, _ = await _session_cookie(dash, "test:ada")
        async with with_cookie(dash.base, cookie) as client:
            refused = await client.post("/signout", data={"csrf": "é" * 64})
            assert refused.status == 403
            await page(client, "/")  # still signed in: the form was refused, nothing else
    _no_tracebacks(caplog)
