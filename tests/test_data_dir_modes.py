"""The data directory and everything in it is private to the bot's user, whatever the umask.

`agentdeck run` outside systemd created the directory 0755 and the database and log
0644: anyone on the host could read the audit trail, transcripts and the inbox. Now the
directory is created 0700 and every file in it 0600 (explicitly, not by the umask of
whoever started it), files an older version left readable are made private at start,
and the process runs with umask 077 as the systemd unit does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.logs import setup_logging
from bot.reload import write_snapshot
from tests.support.config import make_config
from tests.support.decks import DeckFactory

DATABASE_FILES = {"agentdeck.db", "agentdeck.db-wal", "agentdeck.db-shm"}
CONFIG = """
[deck]
default_agent = "umask"
[[agents]]
name = "umask"
kind = "command"
command = ["/bin/sh", "-c", "umask; touch made-by-an-agent"]
cwd = "CWD"
[dashboard]
enabled = true
port = 0
"""


def modes(root: Path) -> dict[str, str]:
    """Every path under `root` (and `root` itself, as ".") with its permission bits."""
    found = {".": oct(stat.S_IMODE(root.stat().st_mode))}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = oct(stat.S_IMODE(path.stat().st_mode))
    return found


async def start_bot(config: Path, data_dir: Path) -> asyncio.subprocess.Process:
    """`agentdeck run` with the loosest umask there is: only explicit modes protect."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        "--config",
        str(config),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "AGENTDECK_DATA_DIR": str(data_dir)},
        umask=0,
    )


async def read_until(process: asyncio.subprocess.Process, marker: str) -> str:
    assert process.stdout is not None
    seen = ""
    async with asyncio.timeout(30):
        while marker not in seen:
            line = await process.stdout.readline()
            assert line, f"the bot ended before printing {marker!r}: {seen}"
            seen += line.decode()
    return seen


@pytest.mark.slow
async def test_a_fresh_data_dir_and_all_it_holds_are_private(
    data_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "deck.toml"
    config.write_text(CONFIG.replace("CWD", str(tmp_path)))
    assert not data_dir.exists()
    process = await start_bot(config, data_dir)
    assert process.stdin is not None
    process.stdin.write(b"/secret set TOKEN some-value\n/ask umask now\n")
    await process.stdin.drain()
    output = await read_until(process, "exit 0")
    running = modes(data_dir)  # while it runs: the WAL and shared memory files exist
    process.stdin.close()
    async with asyncio.timeout(30):
        await process.wait()
    assert process.returncode == 0
    stopped = modes(data_dir)

    expected = {"agentdeck.db", "agentdeck.log", "master.key", "dashboard.key"}
    expected |= {"config.running.json"}
    assert expected <= set(stopped)
    assert set(running) >= DATABASE_FILES
    for seen in (running, stopped):
        assert seen.pop(".") == "0o700"
        # Folders (a run's outbox folder for the files it sends back) 0700, files 0600.
        private = {name: ("0o700" if (data_dir / name).is_dir() else "0o600") for name in seen}
        assert seen == private
    # The agent's command inherits umask 077 too (as under the systemd unit).
    assert "0077" in output
    made = tmp_path / "made-by-an-agent"
    assert oct(stat.S_IMODE(made.stat().st_mode)) == "0o600"


@pytest.mark.slow
async def test_files_an_older_version_left_readable_are_made_private(
    data_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "deck.toml"
    config.write_text(CONFIG.replace("CWD", str(tmp_path)))
    data_dir.mkdir(mode=0o755)
    for name in ("agentdeck.db", "agentdeck.log", "config.running.json"):
        (data_dir / name).touch(mode=0o644)
        os.chmod(data_dir / name, 0o644)
    process = await start_bot(config, data_dir)
    assert process.stdin is not None
    process.stdin.close()
    async with asyncio.timeout(30):
        await process.wait()
    assert process.returncode == 0
    seen = modes(data_dir)
    del seen["."]  # an existing directory is the operator's: its mode is left alone
    assert {name: mode for name, mode in seen.items() if mode != "0o600"} == {}


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The process umask at 000 (an embedding or a test runner may have anything)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    before = os.umask(0)
    yield
    os.umask(before)
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:], root.level = handlers, level


@pytest.mark.usefixtures("loose_umask")
async def test_explicit_modes_hold_without_the_umask(
    deck_with_chat: DeckFactory, data_dir: Path
) -> None:
    config = make_config(CONFIG.replace("CWD", str(data_dir.parent)))
    setup_logging(config.deck.data_path(), config.deck.log_format)
    async with deck_with_chat(config) as (deck, _chat):
        await deck.vault.set("TOKEN", "some-value", by="test")
        await asyncio.to_thread(write_snapshot, config)
        seen = modes(data_dir)
    assert {"agentdeck.log", "master.key", "dashboard.key", "config.running.json"} <= set(seen)
    assert set(seen) >= DATABASE_FILES
    assert seen.pop(".") == "0o700"
    assert {name: mode for name, mode in seen.items() if mode != "0o600"} == {}
