"""Faults under a stream of messages: nothing runs twice, nothing is lost (issue #15).

Real `agentdeck run` processes and the fake Telegram Bot API (`tests.support.chaos`):
kill -9 at random moments (SQLite polling; two PostgreSQL webhook processes), a
PostgreSQL restart then an ordinary restart, Telegram refusing sends with 5xx and 429
(`tests.support.chaos_faults`), SIGTERM during a job's run (`tests.support.chaos_jobs`).
Each message runs at most once, and is answered once or reported once as cut short with
a Run again button; nothing is left unhandled in the inbox or `running`. The same code
at scale is `bench/chaos.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import chaos, chaos_faults, chaos_jobs
from tests.support.chaos import Plan
from tests.support.pgserver import PgServer


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


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_a_postgresql_restart_under_a_stream_then_an_ordinary_restart(
    tmp_path: Path, pg_throwaway: PgServer
) -> None:
    tally = await chaos_faults.database_restart(tmp_path, Plan(messages=60, kills=1), pg_throwaway)
    assert tally.kills == 1
    assert tally.problems() == []
    assert sorted(tally.executions) == tally.tags  # each ran (no kill cut one short)
    assert tally.row().duplicates == tally.row().lost == 0


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_telegram_refusing_sends_with_5xx_and_429_loses_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    tally = await chaos_faults.api_errors(tmp_path, Plan(messages=40, kills=0), share=0.2)
    assert tally.kills >= 3  # refusals answered: 500, 503 and 429 each at least once
    assert tally.problems() == []
    assert sorted(tally.answers) == tally.tags  # every answer arrived, none reported cut
    assert tally.row().duplicates == tally.row().lost == 0


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_sigterm_during_a_job_run_twice_runs_nothing_twice_and_owes_nothing(
    tmp_path: Path,
) -> None:
    row = await chaos_jobs.job_sigterm(tmp_path, stops=2, work=2.0)  # room for a slow SIGTERM
    assert row.faults == 2
    assert row.problems == ()
    assert row.duplicates == row.lost == 0
    assert row.executions == row.messages  # every run recorded ran once
