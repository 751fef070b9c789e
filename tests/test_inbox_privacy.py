"""A value typed for `/secret set` is never written to the database, not even for a moment.

The inbox stores every update before it is handled, so a crash loses none; a command
with private arguments is stored without them (the handler gets them from the update
in memory). After a crash between storing the update and storing the secret, the
update handled again says to send it again: its arguments are gone, and nothing
(least of all a placeholder) is stored as the secret's value. SQLite runs with
`secure_delete`, so what a row held before an update is not left in freed space.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.app import open_deck
from bot.commands import command_table, inbox_form
from bot.deck import Deck
from storage.db import Database, _sqlite_pragmas, sqlite_url
from tests.fakes.telegram_server import FakeTelegram
from tests.support.config import make_config
from tests.support.data import database_bytes
from tests.support.telegram import ADMIN
from tests.support.waiting import eventually

VALUE = "Plaintext-Vault-Value-51d7c0"
CONFIG = f"""
[deck]
data_dir = "DATA_DIR"
default_agent = "echo"
[telegram]
token = "env:TG_TOKEN"
base_url = "BASE_URL"
[[users]]
id = "telegram:{ADMIN}"
role = "admin"
[[agents]]
name = "echo"
kind = "echo"
"""


def config_text(fake: FakeTelegram, data_dir: Path) -> str:
    return CONFIG.replace("BASE_URL", fake.base_url).replace("DATA_DIR", str(data_dir))


def said(fake: FakeTelegram, needle: str) -> bool:
    return any(needle in t for t in fake.sent_texts(ADMIN))


async def settled(deck: Deck) -> None:
    await deck.tasks.drain()
    await deck.runner.flush()


async def test_secret_set_in_chat_leaves_its_value_in_no_database_file(
    fake_telegram: FakeTelegram, data_dir: Path
) -> None:
    config = make_config(config_text(fake_telegram, data_dir))
    async with asyncio.timeout(30), open_deck(config) as (deck, _):
        fake_telegram.user_says(f"/secret set API_KEY {VALUE}", user=ADMIN)
        await fake_telegram.wait_until(lambda: said(fake_telegram, "Stored API_KEY"))
        await settled(deck)
        assert deck.vault.get("API_KEY") == VALUE  # the handler got the value
        assert VALUE.encode() not in database_bytes(data_dir)  # the WAL included
    assert VALUE.encode() not in database_bytes(data_dir)


async def inbox_rows(data_dir: Path) -> list[tuple[str, str | None]]:
    def read() -> list[tuple[str, str | None]]:
        try:
            with sqlite3.connect(data_dir / "agentdeck.db") as conn:
                return list(conn.execute("SELECT payload, handled_at FROM inbox"))
        except sqlite3.OperationalError:  # not created yet
            return []

    return await asyncio.to_thread(read)


async def bot_process(config: Path, data_dir: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        "--config",
        str(config),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "AGENTDECK_DATA_DIR": str(data_dir)},
    )


@pytest.mark.slow
async def test_a_crash_before_the_secret_is_stored_asks_to_send_it_again(
    fake_telegram: FakeTelegram, data_dir: Path, tmp_path: Path
) -> None:
    config_file = tmp_path / "deck.toml"
    config_file.write_text(config_text(fake_telegram, data_dir))
    fake_telegram.hold("deleteMessage")  # `/secret set` deletes the message, then stores
    process = await bot_process(config_file, data_dir)
    try:
        # Polling (an empty poll notifies nobody).
        await eventually(lambda: fake_telegram.first_poll_at is not None, timeout=30)
        fake_telegram.user_says(f"/secret set API_KEY {VALUE}", user=ADMIN)
        await fake_telegram.wait_until(lambda: "deleteMessage" in fake_telegram.waiting, 30)
        await eventually(lambda: inbox_rows(data_dir))
    finally:
        process.send_signal(signal.SIGKILL)  # between storing the update and the secret
        await process.wait()
    fake_telegram.release("deleteMessage")
    ((payload, handled_at),) = await inbox_rows(data_dir)
    assert handled_at is None
    assert json.loads(payload)["text"] == "/secret"
    assert VALUE.encode() not in database_bytes(data_dir)

    async with asyncio.timeout(30), open_deck(make_config(config_file.read_text())) as (deck, _):
        await fake_telegram.wait_until(lambda: said(fake_telegram, "send it again"))
        await settled(deck)
        assert deck.vault.get("API_KEY") is None  # not the placeholder, not anything
    assert VALUE.encode() not in database_bytes(data_dir)
    (told,) = [t for t in fake_telegram.sent_texts(ADMIN) if "send it again" in t]
    assert "/secret" in told


async def test_every_sqlite_connection_overwrites_what_it_deletes(data_dir: Path) -> None:
    # Debian's SQLite is built with secure_delete on; others are not: switched off first,
    # the connection set-up must switch it on.
    raw = sqlite3.connect(":memory:")
    raw.execute("PRAGMA secure_delete=OFF")
    _sqlite_pragmas(raw, None)
    assert raw.execute("PRAGMA secure_delete").fetchone() == (1,)
    raw.close()
    async with Database(sqlite_url(data_dir)) as db:  # and it is the hook of every engine
        async with db.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA secure_delete"))).scalar() == 1
        assert await db.read(lambda c: c.execute(text("PRAGMA secure_delete")).scalar()) == 1
        seen: list[object] = []
        await db.write_batch(
            lambda c: seen.append(c.execute(text("PRAGMA secure_delete")).scalar())
        )
        assert seen == [1]


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("/secret set API_KEY v", "/secret"),
        ("  /SECRET@deck_bot set API_KEY v", "/secret"),
        ("/secret\tset API_KEY v", "/secret"),  # split as loosely as any parser would
        ("/secret", "/secret"),
        ("/secrets", "/secrets"),  # no private arguments: as typed
        ("/ask echo secret set x", "/ask echo secret set x"),
        ("hello", "hello"),
    ],
)
def test_the_inbox_form_drops_private_arguments_only(typed: str, kept: str) -> None:
    stored = inbox_form(command_table())({"text": typed, "chat": "telegram:1"})
    assert stored["text"] == kept
    assert stored.get("redacted", False) == (kept == "/secret")
    assert stored["chat"] == "telegram:1"
