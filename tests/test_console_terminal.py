"""The interactive console through a real pseudo-terminal: a prompt, line editing,
history kept across starts (never a `/secret set` line), and no log record of another
component printed into the chat (it goes to the log file)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from storage.secrets import new_key
from tests.support.pty_session import LEFT, UP, PtySession

SECRET_VALUE = "hunter2-terminal-value"


def config(ledger: Path) -> str:
    return f"""
[deck]
default_agent = "ledger"
[[agents]]
name = "ledger"
kind = "command"
command = ["sh", "-c", "echo \\"$0\\" >> {ledger}; echo got $0", "{{input}}"]
"""


@pytest.fixture
def deck_files(tmp_path: Path, data_dir: Path) -> tuple[Path, Path]:
    ledger = tmp_path / "ledger"
    path = tmp_path / "deck.toml"
    path.write_text(config(ledger))
    return path, ledger


MASTER_KEY = new_key()


def start(path: Path, data_dir: Path) -> PtySession:
    env = {**os.environ, "AGENTDECK_DATA_DIR": str(data_dir), "TERM": "xterm"}
    env["AGENTDECK_MASTER_KEY"] = MASTER_KEY
    return PtySession([sys.executable, "-m", "bot", "run", "--config", str(path)], env=env)


def ledger_lines(ledger: Path) -> list[str]:
    return ledger.read_text().splitlines() if ledger.exists() else []


@pytest.mark.slow
async def test_a_person_at_the_terminal_edits_recalls_and_sees_only_the_chat(
    deck_files: tuple[Path, Path], data_dir: Path
) -> None:
    path, ledger = deck_files
    session = start(path, data_dir)
    try:
        await session.expect(b"you> ")
        session.send(b"/ask ledger helo" + LEFT + b"l\r")  # fix a typo in the middle
        await session.expect(b"got hello")
        session.send(UP + b"\r")  # the same line again, from history
        await session.expect(b"got hello", count=2)
        session.send(f"/secret set TOKEN {SECRET_VALUE}\r".encode())
        await session.expect(b"Stored")
        # Another component logs a warning (a reload of a broken config): not on screen.
        path.write_text("[deck\n")
        session.signal(signal.SIGHUP)
        log = data_dir / "agentdeck.log"
        async with asyncio.timeout(20):
            while "SIGHUP" not in (log.read_text() if log.exists() else ""):
                await asyncio.sleep(0.05)
        path.write_text(config(ledger))
        session.send(b"\x04")  # Ctrl-D
        assert await session.wait() == 0
    finally:
        session.close()
    screen = session.output.decode(errors="replace")
    assert "WARNING" not in screen
    assert "SIGHUP" not in screen
    assert "Traceback" not in screen
    assert ledger_lines(ledger) == ["hello", "hello"]  # each line ran once
    history = (data_dir / "console_history").read_text()
    assert "/ask ledger hello" in history
    assert SECRET_VALUE not in history
    assert "/secret" not in history
    assert oct((data_dir / "console_history").stat().st_mode & 0o777) == "0o600"

    again = start(path, data_dir)  # the history outlives the process
    try:
        await again.expect(b"you> ")
        again.send(UP + b"\r")
        await again.expect(b"got hello")
        again.send(b"\x04")
        assert await again.wait() == 0
    finally:
        again.close()
    assert ledger_lines(ledger) == ["hello", "hello", "hello"]
