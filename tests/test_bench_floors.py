"""The bots bench.telegram_bench compares agentdeck with answer through the same fakes.

A floor that silently failed would make agentdeck look good for nothing: the bare
python-telegram-bot bot (`bench/ptb_llm_bot.py`) and Errbot with its Telegram backend
(`bench/errbot_floor/`, from the `.venv-peers` that `make bench-peers` makes) must each
poll the fake Bot API, make the chat-completion call to the fake OpenAI API, and send
its answer back to the chat the message came from.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.telegram_server import FakeTelegram

ROOT = Path(__file__).resolve().parent.parent
ERRBOT = ROOT / ".venv-peers" / "bin" / "errbot"

pytestmark = pytest.mark.slow  # each starts a bot in a process of its own


async def answered_by(
    argv: list[str], env: dict[str, str], telegram: FakeTelegram, openai: FakeOpenAI
) -> None:
    """Start the bot, say something, and check the model's answer comes back to that chat."""
    child = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env={**os.environ, "OPENAI_API_KEY": "sk-floor", **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        telegram.user_says("how far is the moon?", user=2001)
        try:
            sent = await telegram.wait_for("sendMessage", timeout=60)
        except TimeoutError:
            child.kill()
            _, errors = await child.communicate()
            pytest.fail(f"no answer from {argv[0]}: {errors.decode()[-2000:]}")
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert sent[0].params["text"] == "echo: how far is the moon?"
    assert int(sent[0].params["chat_id"]) == 2001
    assert openai.requests[0]["messages"] == [{"role": "user", "content": "how far is the moon?"}]
    assert openai.keys == ["sk-floor"]


async def test_the_bare_ptb_llm_bot_answers_with_the_model(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    script = str(ROOT / "bench" / "ptb_llm_bot.py")
    argv = [sys.executable, script, fake_telegram.base_url, fake_telegram.token]
    await answered_by([*argv, fake_openai.base_url], {}, fake_telegram, fake_openai)


@pytest.mark.skipif(
    not ERRBOT.exists(),
    reason=f"Errbot's venv is not made ({ERRBOT} is missing): `make bench-peers` makes it",
)
async def test_errbot_with_its_telegram_backend_answers_with_the_model(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    env = {
        "ERRBOT_DATA_DIR": str(tmp_path),
        "TG_BASE_URL": fake_telegram.base_url,
        "TG_TOKEN": fake_telegram.token,
        "BENCH_LLM_URL": fake_openai.base_url,
    }
    argv = [str(ERRBOT), "-c", str(ROOT / "bench" / "errbot_floor" / "config.py")]
    await answered_by(argv, env, fake_telegram, fake_openai)
