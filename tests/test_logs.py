"""Structured logs: `[deck] log_format = "json"` writes one JSON object per line, naming the
run and chat a line was written for; the secret-redaction filter still applies."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.logs import JsonFormatter
from storage.secrets import new_key
from tests.fakes.openai_server import FakeOpenAI, fail
from tests.support.config import make_config
from tests.support.data import store_secrets
from tests.support.decks import DeckFactory

SECRET = "hunter2-very-secret-value"


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """A JSON handler on the root logger, in place before the deck adds its filters."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


async def test_json_lines_name_the_run_and_chat_and_are_scrubbed(
    deck_with_chat: DeckFactory,
    fake_openai: FakeOpenAI,
    json_lines: io.StringIO,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTDECK_MASTER_KEY", new_key())
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    await store_secrets(data_dir, db_password=SECRET)
    fake_openai.by_model["primary"] = [fail(500)]
    config = make_config(f"""
[deck]
default_agent = "writer"
[llm]
base_url = "{fake_openai.base_url}"
max_retries = 0
[[users]]
id = "test:admin"
role = "admin"
[[agents]]
name = "writer"
kind = "llm"
model = "primary"
fallback_model = "backup"
""")
    async with deck_with_chat(config) as (deck, chat):
        await chat.say("write something")
        await chat.wait_for("echo: write something")  # answered by the fallback model
        [run_id] = [run_id for run_id in await run_ids(deck)]
        try:
            raise RuntimeError(f"connecting with {SECRET} failed")
        except RuntimeError:
            logging.getLogger("bot.test").exception("the password is %s", SECRET)

    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    [fallback] = [line for line in lines if line["logger"] == "roster.fallback"]
    assert fallback["level"] == "WARNING"
    assert fallback["message"].startswith("model primary failed (The model API answered 500")
    assert fallback["run"] == run_id
    assert fallback["chat"] == "test:chat"
    assert fallback["time"].endswith("+00:00")
    [leak] = [line for line in lines if line["logger"] == "bot.test"]
    assert leak["message"] == "the password is [redacted:db_password]"
    assert "connecting with [redacted:db_password] failed" in leak["exception"]
    assert "run" not in leak  # written outside any run
    assert SECRET not in json_lines.getvalue()


async def run_ids(deck) -> list[str]:  # type: ignore[no-untyped-def]
    from sqlmodel import select

    from storage.models import Run

    await deck.runner.flush()
    async with deck.db.session() as session:
        return [run.id for run in (await session.exec(select(Run))).all()]


@pytest.mark.slow
async def test_agentdeck_run_writes_a_json_log_file(tmp_path: Path, data_dir: Path) -> None:
    path = tmp_path / "deck.toml"
    path.write_text('[deck]\nlog_format = "json"\n[[agents]]\nname = "echo"\nkind = "echo"\n')
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        "--config",
        str(path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "AGENTDECK_DATA_DIR": str(data_dir)},
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate(b"/ask echo hi\n")
    assert process.returncode == 0, err
    assert b"echo: hi" in out
    lines = [json.loads(line) for line in (data_dir / "agentdeck.log").read_text().splitlines()]
    assert lines
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert any(line["message"].startswith("agentdeck started.") for line in lines)
