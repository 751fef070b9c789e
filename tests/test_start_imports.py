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
# migrations of an older database, the model SDK (in a thread, at the first model call),
# JSON Schema for tool arguments, the vault's crypto, the Markdown parser (at the first
# text rendered), PDF reading, the metrics registry, the Claude Code SDK; and never:
# httpx's command-line client, trio.
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
    "markdown_it",
    "trio",
    "pypdf",
    "prometheus_client",
    "claude_agent_sdk",
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


def test_the_first_model_call_loads_the_sdk_off_the_loop_and_without_trio() -> None:
    """`load_sdk` imports the SDK and builds the client (its TLS set-up imports httpcore2)
    in a worker thread: the loop turns meanwhile. httpcore2 would import trio, installed
    here beside Selenium; it is kept out, and can still be imported afterwards."""
    pytest.importorskip("trio")  # the dev install has it; without it there is nothing to test
    code = """
        import asyncio, sys
        from roster.model_client import ModelClient, ModelSettings
        from tests.fakes.openai_server import FakeOpenAI

        async def main():
            fake = await FakeOpenAI().start()
            client = ModelClient(ModelSettings(base_url=fake.base_url, api_key="sk-test"))
            turns = 0

            async def tick():
                nonlocal turns
                while True:
                    turns += 1
                    await asyncio.sleep(0)

            ticker = asyncio.create_task(tick())
            await asyncio.sleep(0)
            before = turns
            await client.load_sdk()
            during = turns - before
            ticker.cancel()
            built = "httpcore2" in sys.modules
            reply = await client.complete("fake", [{"role": "user", "content": "hi"}], [])
            await client.close()
            await fake.stop()
            print(f"turned={during > 1} built={built} reply={reply.content}")

        asyncio.run(main())
        print(f"trio={'trio' in sys.modules}")
        import trio
        print(f"importable={trio.__name__}")
        """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.splitlines() == [
        "turned=True built=True reply=echo: hi",
        "trio=False",
        "importable=trio",
    ]
