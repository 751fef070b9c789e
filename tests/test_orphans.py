"""Stopping the process group a dead bot left: only the very process recorded, only here."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import pytest

from bot.runs.orphans import Left, group_running, host, stop_left
from roster.process_tree import start_ticks


@pytest.fixture
async def group() -> AsyncIterator[int]:
    """A process group like a command's (its own session): a shell and its child, both
    ignoring SIGTERM (an ignored signal stays ignored across exec)."""
    process = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", "trap '' TERM; sleep 30; echo never", start_new_session=True
    )
    try:
        yield process.pid
    finally:
        if group_running(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


async def test_a_pid_used_again_or_another_hosts_is_left_alone(group: int) -> None:
    started = start_ticks(group)
    assert started is not None
    assert await stop_left(group, started + 1, host(), 0.2) is Left.ENDED  # another process
    assert await stop_left(group, started, "elsewhere/boot", 0.2) is Left.ELSEWHERE
    assert await stop_left(group, None, host(), 0.2) is Left.ENDED  # not known: not touched
    assert await stop_left(None, None, None, 0.2) is Left.UNKNOWN
    assert group_running(group)


async def test_the_recorded_group_is_stopped_even_when_it_ignores_sigterm(group: int) -> None:
    started = start_ticks(group)
    assert await stop_left(group, started, host(), 0.2) is Left.STOPPED
    assert not group_running(group)
