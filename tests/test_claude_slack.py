"""A Claude Code agent in Slack threads: each thread is its own session, resumed by id.

Two threads in one channel: a follow-up in the first thread resumes the first session
(the fake API sees its history), the second thread starts its own; a permission card
comes into the thread and an admin's press runs the command.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.sessions import AgentSessions
from tests.fakes.anthropic_server import FakeAnthropic, all_text, say, use
from tests.fakes.slack_server import FakeSlack
from tests.support.agent_clis import claude_config_text, without_foreign_env
from tests.support.slack import slack_deck

pytestmark = pytest.mark.slow


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    server = await FakeAnthropic().start()
    yield server
    await server.stop()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    without_foreign_env(monkeypatch)
    path = tmp_path / "work"
    path.mkdir()
    return path


def slack_config(fake: FakeAnthropic, workdir: Path) -> str:
    users = (
        '[[users]]\nid = "slack:UADMIN"\nrole = "admin"\n'
        '[[users]]\nid = "slack:UOP"\nrole = "operator"\n'
    )
    return claude_config_text(fake, workdir).replace("[[users]]\n", users + "[[users]]\n", 1)


async def test_each_thread_is_a_session_of_its_own(
    fake: FakeAnthropic, fake_slack: FakeSlack, workdir: Path
) -> None:
    fake.script += [
        say("Thread one noted: apples."),
        say("Thread two noted: pears."),
        use("Bash", command="touch one.txt"),
        say("Apples, as you said."),
    ]
    async with slack_deck(fake_slack, slack_config(fake, workdir)) as (deck, slack):
        one = await slack.mention("remember apples", user="UADMIN")
        await fake_slack.wait_for_text("Thread one noted")
        two = await slack.mention("remember pears", user="UADMIN")
        await fake_slack.wait_for_text("Thread two noted")
        await slack.mention("which fruit? write it down", user="UADMIN", thread_ts=one)
        card = await fake_slack.wait_for_text("Approval needed")
        assert card.thread_ts == one
        await slack.press(card, "Approve", user="UADMIN")
        answer = await fake_slack.wait_for_text("Apples, as you said.")
        assert answer.thread_ts == one
        sessions = AgentSessions(db=deck.db, clock=deck.clock)
        first = await sessions.get(f"slack:C1/{one}", "coder")
        second = await sessions.get(f"slack:C1/{two}", "coder")
        assert first is not None
        assert second is not None
        assert first.session_id != second.session_id
        assert first.turns == 2
    history = all_text(fake.requests[-1])
    assert "remember apples" in history
    assert "pears" not in history
    assert (workdir / "one.txt").exists()
