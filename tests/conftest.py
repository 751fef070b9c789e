"""Shared fixtures. Tests talk only to servers on this machine: a guard refuses the rest."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import tomllib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.app import open_deck
from bot.config import Config, parse_config
from bot.deck import Deck
from storage.db import Database, sqlite_url
from tests import pgserver
from tests.fakes.chat import ChatRecorder
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_server import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.pgserver import PgServer

PG_URL = os.environ.get("AGENTDECK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
            raise ConnectionRefusedError(f"tests may not reach {host}: only 127.0.0.1 / ::1")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _network_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


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


def make_config(text: str, **sections: Any) -> Config:
    """A config from TOML text; keyword sections are merged on top."""
    data = tomllib.loads(text)
    data.update(sections)
    return parse_config(data, source="test.toml")


DeckFactory = Callable[[Config], AbstractAsyncContextManager[tuple[Deck, ChatRecorder]]]


@pytest.fixture
def deck_with_chat() -> DeckFactory:
    """Open a deck whose only transport is a `ChatRecorder` (chat ids `test:...`)."""

    @asynccontextmanager
    async def opened(config: Config) -> AsyncIterator[tuple[Deck, ChatRecorder]]:
        chat = ChatRecorder()
        async with asyncio.timeout(60), open_deck(config, transports=[chat]) as (deck, _):
            yield deck, chat

    return opened


def postgres_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


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
    asyncio.run(_admin_sql(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(_admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin_sql(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_URL.replace("postgresql://", "postgres://"))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


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
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    with pgserver.pg_server(port) as server:
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


async def audit_actions(deck: Deck) -> list[str]:
    """Every audit event's action so far, oldest first (queued writes flushed first)."""
    from sqlmodel import select

    from storage.models import AuditEvent

    await deck.runner.flush()
    async with deck.db.session() as session:
        return [e.action for e in (await session.exec(select(AuditEvent))).all()]
