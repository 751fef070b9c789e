"""Shared fixtures, and only fixtures (helpers live in `tests.support`). Tests talk only to
servers on this machine: a guard refuses the rest."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from storage.db import Database, sqlite_url
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_server import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.fakes.telegram_server import FakeTelegram
from tests.support import pgserver
from tests.support.decks import DeckFactory, chat_deck
from tests.support.network import PG_URL, admin_sql, free_port, loopback_only, postgres_available
from tests.support.pgserver import PgServer

if TYPE_CHECKING:  # Selenium is imported only by the browser tests that use these
    from selenium.webdriver.remote.webdriver import WebDriver

    from tests.support.browser import Browser


@pytest.fixture(autouse=True)
def _network_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", loopback_only)


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data"
    monkeypatch.setenv("AGENTDECK_DATA_DIR", str(path))
    for name in ("AGENTDECK_CONFIG", "OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENTDECK_MASTER_KEY"):
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    server = await FakeOpenAI().start()
    yield server
    await server.stop()


@pytest.fixture
def deck_with_chat() -> DeckFactory:
    """Open a deck whose only transport is a `ChatRecorder` (chat ids `test:...`)."""
    return chat_deck


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database of its own (so parallel runs don't meet), dropped after.

    Skipped with a reason outside CI when no PostgreSQL runs; in CI it must.
    """
    if not postgres_available():
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not running at 127.0.0.1:5432 (CI must start it)")
        pytest.skip("PostgreSQL is not running at 127.0.0.1:5432")
    name = f"agentdeck_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_throwaway() -> Iterator[PgServer]:
    """A PostgreSQL server of this test's own, which it may stop and restart (the shared
    one at 127.0.0.1:5432 must never be). Skipped with a reason where the server binaries
    are missing, outside CI."""
    reason = pgserver.missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"a throwaway PostgreSQL cannot start: {reason}")
        pytest.skip(reason)
    with pgserver.pg_server(free_port()) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, data_dir: Path) -> str:
    """The test runs twice: on a SQLite file, and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return sqlite_url(data_dir)
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    async with Database(db_url) as database:
        yield database


@pytest.fixture
async def fake_slack(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeSlack]:
    """The fake Slack Web API, with the tokens a Slack section reads from the environment."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_APP_TOKEN", APP_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    server = await FakeSlack().start()
    yield server
    await server.stop()


@pytest.fixture
async def fake_telegram(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeTelegram]:
    """The fake Bot API; its token in `TG_TOKEN`, as the Telegram configs of tests read it."""
    server = await FakeTelegram().start()
    monkeypatch.setenv("TG_TOKEN", server.token)
    yield server
    await server.stop()


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """A headless Chromium for a module's browser tests (skipped where it is missing)."""
    from tests.support.browser import start_chromium

    chromium = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield chromium
    chromium.quit()


@pytest.fixture
async def browser(driver: WebDriver) -> Browser:
    """The module's Chromium with its cookies and storage forgotten."""
    from tests.support.browser import Browser

    browser = Browser(driver)
    await browser.forget()
    return browser
