"""Secrets end to end through the real CLI: `agentdeck secrets ...` and `agentdeck run`.

The plaintext test: a value set with the CLI reaches a command agent through its env,
the agent prints it, and neither the chat output, nor the log file, nor any byte of
the database files holds the value.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.clock import SystemClock
from storage.db import Database, sqlite_url
from storage.secrets import ENV_KEY, KEY_FILE, Vault, new_key
from tests.support.bot_process import agentdeck, run_console
from tests.support.data import store_secrets

pytestmark = pytest.mark.slow  # real agentdeck processes (CLI and bot)

VALUE = "s3cr3t-Plaintext-7c1e9b"
CONFIG = """
[deck]
default_agent = "printer"
[[agents]]
name = "printer"
kind = "command"
command = ["/bin/sh", "-c", "echo token=$TOKEN; echo done"]
env = { TOKEN = "secret:TOKEN" }
secrets = ["TOKEN"]
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "deck.toml"
    path.write_text(CONFIG)
    return path


async def test_no_plaintext_in_chat_log_or_database(data_dir: Path, config_file: Path) -> None:
    code, out, err = await agentdeck(
        "secrets", "set", "TOKEN", data_dir=data_dir, stdin=VALUE + "\n"
    )
    assert code == 0, err
    assert "Stored TOKEN" in out
    code, chat, err = await run_console(
        ["/ask printer now", "/runs", "/secrets"], data_dir, "--config", str(config_file)
    )
    assert code == 0, err
    assert "token=[redacted:TOKEN]" in chat  # the agent got the value and printed it
    assert "`TOKEN` set by cli:" in chat
    log_text = (data_dir / "agentdeck.log").read_text()
    database_files = sorted(data_dir.glob("agentdeck.db*"))
    assert database_files
    for where, text in [("chat", chat + err), ("log", log_text)]:
        assert VALUE not in text, where
    for path in database_files:
        assert VALUE.encode() not in path.read_bytes(), path.name


async def test_cli_list_and_delete(data_dir: Path) -> None:
    await store_secrets(data_dir, TOKEN=VALUE, OTHER="other-value")
    code, out, _ = await agentdeck("secrets", "list", data_dir=data_dir)
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == ["OTHER", "TOKEN"]
    assert VALUE not in out
    code, out, _ = await agentdeck("secrets", "delete", "OTHER", data_dir=data_dir)
    assert (code, out.strip()) == (0, "Deleted OTHER.")
    code, _, err = await agentdeck("secrets", "delete", "OTHER", data_dir=data_dir)
    assert code == 1
    assert (
        err.strip()
        == "agentdeck: No secret named 'OTHER'. `agentdeck secrets list` shows the names."
    )


async def test_cli_rotate_key(data_dir: Path, config_file: Path) -> None:
    await store_secrets(data_dir, TOKEN=VALUE)
    old_key = (data_dir / KEY_FILE).read_text()
    code, out, err = await agentdeck("secrets", "rotate-key", data_dir=data_dir)
    assert code == 0, err
    assert "Re-encrypted 1 secret(s) with a new key" in out
    assert (data_dir / KEY_FILE).read_text() != old_key
    code, chat, err = await run_console(
        ["/ask printer now"], data_dir, "--config", str(config_file)
    )
    assert code == 0, err
    assert "token=[redacted:TOKEN]" in chat  # still readable after rotation


async def test_wrong_key_is_one_line_and_the_bot_does_not_start(
    data_dir: Path, config_file: Path
) -> None:
    await store_secrets(data_dir, TOKEN=VALUE)
    wrong = {ENV_KEY: new_key()}
    code, _, err = await agentdeck(
        "secrets", "set", "MORE", data_dir=data_dir, stdin="v4lue", env=wrong
    )
    assert code == 1
    [line] = err.strip().splitlines()
    assert line.startswith("agentdeck: The master key from AGENTDECK_MASTER_KEY does not decrypt")
    code, out, err = await agentdeck(
        "run", "--config", str(config_file), data_dir=data_dir, env=wrong
    )
    assert code == 1
    assert "does not decrypt the 1 stored secret(s)" in err
    assert "Traceback" not in err + out
    code, out, _ = await agentdeck("secrets", "list", data_dir=data_dir, env=wrong)
    assert code == 0  # names need no key
    assert out.startswith("TOKEN")


async def test_empty_stdin_stores_nothing(data_dir: Path) -> None:
    code, _, err = await agentdeck("secrets", "set", "TOKEN", data_dir=data_dir, stdin="\n")
    assert (code, err.strip()) == (1, "agentdeck: The value is empty; nothing was stored.")
    async with Database(sqlite_url(data_dir)) as db:
        assert await Vault(db=db, data_dir=data_dir, clock=SystemClock()).listing() == []
