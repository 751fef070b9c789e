"""What a Telegram deck imports at start: nothing it does not use (start-up time, memory).

Each check runs in a fresh interpreter, since this test process has imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Loaded only when configured or first used: the dashboard, Slack, the webhook server,
# migrations of an older database, the model SDK (in a thread, once the deck runs), JSON
# Schema for tool arguments, the vault's crypto; and never: httpx's command-line client.
NOT_AT_START = (
    "bot.dashboard",
    "aiohttp.web",
    "jinja2",
    "bot.transports.slack",
    "slack_bolt",
    "slack_sdk",
    "alembic",
    "openai",
    "mcp",
    "jsonschema",
    "cryptography",
    "httpx._main",
    "rich",
    "pygments",
)

pytestmark = pytest.mark.slow  # a fresh Python process per check


def loaded_after(code: str) -> list[str]:
    """Run `code` in a fresh interpreter; which of NOT_AT_START did it import?"""
    script = textwrap.dedent(code) + textwrap.dedent(f"""
        import json, sys
        print(json.dumps([m for m in {NOT_AT_START!r} if m in sys.modules]))
        """)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return list(json.loads(done.stdout.splitlines()[-1]))


def test_the_command_line_imports_no_deck() -> None:
    assert loaded_after("import bot.cli") == []


def test_a_telegram_deck_starts_without_what_it_does_not_use() -> None:
    code = """
        import bot.app, bot.transports.telegram
        from bot.commands import command_table
        command_table()  # the dispatcher's chat commands
        """
    assert loaded_after(code) == []


def test_what_was_left_out_of_telegram_is_importable_afterwards() -> None:
    code = """
        import bot.transports.telegram
        from cryptography.fernet import Fernet
        import httpx._main
        Fernet(Fernet.generate_key())
        """
    assert set(loaded_after(code)) >= {"cryptography", "httpx._main"}
