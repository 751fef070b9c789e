"""A full disk: the admin hears it once, and once when space is back; no message is lost.

The data directory is a small tmpfs of the test's own (we run as root; elsewhere the
test is skipped with the reason). The disk is filled with a ballast file while the bot
runs on Telegram (polling), messages keep coming, then the ballast goes.
A command agent appends each input to a file outside that disk: executions are counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.app import open_deck
from bot.diskspace import back_text, full_text
from tests.fakes.telegram_server import FakeTelegram
from tests.support.config import make_config
from tests.support.telegram import ADMIN
from tests.support.waiting import eventually

USERS = (2001, 2002, 2003)
BEFORE, DURING = 5, 30


@contextlib.contextmanager
def small_disk(path: Path, size: str = "8m") -> Iterator[Path]:
    path.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs for a small disk (root needed): {exc}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Write a ballast file until the disk has no byte left."""
    ballast = disk / "ballast"
    with ballast.open("wb", buffering=0) as out:
        for size in (65536, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while out.write(b"\0" * size):
                    pass
    return ballast


def config(fake: FakeTelegram, disk: Path, ran: Path) -> str:
    users = "".join(f'[[users]]\nid = "telegram:{u}"\nrole = "admin"\n' for u in (ADMIN, *USERS))
    count = f'printf \'%s\\n\' "$1" >> {ran} && echo "ran $1"'
    return f"""
[deck]
data_dir = "{disk}"
default_agent = "count"
admin_chat = "telegram:{ADMIN}"
[scheduler]
enabled = false
[telegram]
token = "env:TG_TOKEN"
base_url = "{fake.base_url}"
[[agents]]
name = "count"
kind = "command"
command = ["/bin/sh", "-c", {_toml(count)}, "sh", "{{input}}"]
approval = "never"
{users}"""


def _toml(text: str) -> str:
    import json

    return json.dumps(text)


def _answers(fake: FakeTelegram) -> Counter[str]:
    found: Counter[str] = Counter()
    for call in fake.calls_to("sendMessage"):
        if match := re.search(r"\bran (m\d+)(?!\d)", call.params.get("text", "")):
            found[match.group(1)] += 1
    return found


def _admin_texts(fake: FakeTelegram) -> list[str]:
    return [
        c.params["text"] for c in fake.calls_to("sendMessage") if int(c.params["chat_id"]) == ADMIN
    ]


async def test_a_full_disk_is_told_once_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = await FakeTelegram().start()
    monkeypatch.setenv("TG_TOKEN", fake.token)
    ran = tmp_path / "ran.txt"
    texts = [f"m{n}" for n in range(BEFORE + DURING)]
    try:
        with small_disk(tmp_path / "disk") as disk:
            monkeypatch.setenv("AGENTDECK_DATA_DIR", str(disk))
            async with (
                asyncio.timeout(90),
                open_deck(make_config(config(fake, disk, ran))) as (
                    deck,
                    _,
                ),
            ):
                where = deck.db.display_url
                for n, said in enumerate(texts[:BEFORE]):
                    fake.user_says(said, user=USERS[n % len(USERS)])
                await fake.wait_until(lambda: len(_answers(fake)) == BEFORE, timeout=20)

                ballast = fill(disk)
                for n, said in enumerate(texts[BEFORE:]):
                    fake.user_says(said, user=USERS[n % len(USERS)])
                    await asyncio.sleep(0.02)
                notice = full_text(where, "…").split(": ", 1)[0]  # "… is out of space"
                await fake.wait_until(
                    lambda: any(notice in t for t in _admin_texts(fake)), timeout=30
                )
                await asyncio.sleep(1.0)  # time for a second notice, if one were coming
                ballast.unlink()
                await fake.wait_until(lambda: set(_answers(fake)) == set(texts), timeout=60)
                await fake.wait_until(
                    lambda: any(back_text(where) in t for t in _admin_texts(fake)), timeout=20
                )
                await deck.runner.flush()
            admin = _admin_texts(fake)
    finally:
        await fake.stop()
    executed = Counter(ran.read_text().split())
    assert executed == Counter(texts)  # each once: none lost, none twice
    assert _answers(fake) == Counter(texts)
    assert sum(notice in t for t in admin) == 1
    assert sum(back_text(where) in t for t in admin) == 1
    assert str(disk / "agentdeck.db") in where


def _wal_size(wal: Path) -> int:
    return wal.stat().st_size if wal.exists() else 0


async def test_a_quiet_bots_wal_stays_small(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a burst of messages, an idle moment checkpoints and truncates the WAL."""
    fake = await FakeTelegram().start()
    monkeypatch.setenv("TG_TOKEN", fake.token)
    ran = tmp_path / "ran.txt"
    disk = tmp_path / "data"
    disk.mkdir()
    wal = disk / "agentdeck.db-wal"
    try:
        async with asyncio.timeout(60), open_deck(make_config(config(fake, disk, ran))):
            for n in range(60):
                fake.user_says(f"m{n}", user=USERS[n % len(USERS)])
            await fake.wait_until(lambda: len(_answers(fake)) == 60, timeout=30)
            grown = wal.stat().st_size
            await eventually(lambda: _wal_size(wal) == 0, timeout=10, step=0.2)
    finally:
        await fake.stop()
    # The messages went through the WAL, which the idle checkpoint emptied.
    assert (grown > 0, _wal_size(wal)) == (True, 0)
