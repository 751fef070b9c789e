"""kill -9 at random moments of a stream of messages: nothing runs twice, nothing is lost.

Real `agentdeck run` processes and the fake Telegram Bot API (`tests.support.chaos`): each
message runs at most once, and is answered once or reported once as cut short with a
Run again button; nothing is left unhandled in the inbox or `running`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import chaos
from tests.support.chaos import Plan


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_kill_9_under_a_stream_on_sqlite_polling(tmp_path: Path) -> None:
    tally = await chaos.polling(tmp_path, Plan(messages=80, kills=3))
    assert tally.kills == 3
    assert tally.problems() == []
    assert sum(tally.executions.values()) <= tally.messages


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_kill_9_of_one_of_two_webhook_processes_on_postgresql(
    tmp_path: Path, pg_url: str
) -> None:
    tally = await chaos.webhook_pair(tmp_path, Plan(messages=80, kills=3), pg_url)
    assert tally.kills == 3
    assert tally.problems() == []
    assert sum(tally.executions.values()) <= tally.messages
