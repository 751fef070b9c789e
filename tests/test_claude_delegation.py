"""An llm manager delegates to a Claude Code agent with `ask_agent`: the chain and the
sub-agent's answer in the same chat, its permission card there too, the answer back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.anthropic_server import FakeAnthropic, say, use
from tests.fakes.openai_server import FakeOpenAI, call
from tests.fakes.openai_server import say as llm_say
from tests.support.agent_clis import claude_config_text
from tests.support.config import make_config
from tests.support.decks import DeckFactory

pytestmark = pytest.mark.slow


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    server = await FakeAnthropic().start()
    yield server
    await server.stop()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from tests.support.agent_clis import without_foreign_env

    without_foreign_env(monkeypatch)
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")
    path = tmp_path / "work"
    path.mkdir()
    return path


async def test_a_manager_delegates_to_claude(
    deck_with_chat: DeckFactory, fake: FakeAnthropic, fake_openai: FakeOpenAI, workdir: Path
) -> None:
    fake.script += [use("Bash", command="touch built.txt"), say("Built it.")]
    fake_openai.by_model["boss-model"] = [
        call("ask_agent", agent="coder", text="build the thing"),
        llm_say("coder says it is built"),
    ]
    manager = f"""
[llm]
base_url = "{fake_openai.base_url}"
api_key = "env:TEST_OPENAI_KEY"
max_retries = 0
[[agents]]
name = "boss"
kind = "llm"
model = "boss-model"
tools = ["ask_agent"]
"""
    text = claude_config_text(fake, workdir).replace(
        'default_agent = "coder"', 'default_agent = "boss"'
    )
    async with deck_with_chat(make_config(text + manager)) as (deck, chat):
        await chat.say("get the thing built")
        await chat.wait_for("boss → coder: build the thing")
        await chat.wait_for("Approval needed")
        approval = (await deck.approvals.pending())[0]
        await chat.press(f"{approval.id}:approve")
        await chat.wait_for("coder: Built it.")
        await chat.wait_for("boss: coder says it is built")
    assert (workdir / "built.txt").exists()
    last = fake_openai.requests[-1]
    assert any("Built it." in str(m.get("content")) for m in last["messages"])
