"""The fake Telegram and OpenAI servers as the benches run them: scripts of their own.

Imported by a test, a module's functions are all defined; run with `python -m`, the
`__main__` block runs before whatever is written below it. A helper defined there once
made every `sendMessage` of the script fail (a NameError), which only a bench showed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.telegram_server import TOKEN
from tests.support.network import free_port
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@contextmanager
def script(module: str, port: int) -> Iterator[str]:
    child = subprocess.Popen(
        [sys.executable, "-m", module, "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        child.terminate()
        _, errors = child.communicate(timeout=10)
        assert b"Traceback" not in errors, errors.decode()


async def post(url: str, body: dict[str, object]) -> dict[str, object]:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
        answer: dict[str, object] = await response.json()
    return answer


async def answering(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as session, session.get(url):
            return True  # it answers, if not to this path
    except aiohttp.ClientConnectionError:
        return False


async def test_the_fake_telegram_script_sends_messages_with_buttons() -> None:
    with script("tests.fakes.telegram_server", free_port()) as base:
        assert await eventually(lambda: answering(base), timeout=20)
        markup = {"inline_keyboard": [[{"text": "Approve", "callback_data": "x:approve"}]]}
        sent = await post(
            f"{base}/bot{TOKEN}/sendMessage",
            {"chat_id": 1001, "text": "hello", "reply_markup": json.dumps(markup)},
        )
        assert sent["ok"] is True
        result = sent["result"]
        assert isinstance(result, dict)
        assert result["text"] == "hello"


async def test_the_fake_openai_script_answers_a_chat_completion() -> None:
    with script("tests.fakes.openai_server", free_port()) as base:
        assert await eventually(lambda: answering(base), timeout=20)
        answer = await post(
            f"{base}/v1/chat/completions",
            {"model": "fake", "messages": [{"role": "user", "content": "hi"}]},
        )
        choices = answer["choices"]
        assert isinstance(choices, list)
        assert choices[0]["message"]["role"] == "assistant"
