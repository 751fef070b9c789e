"""TaskSet.settle: waits for work without cancelling it, and gives up when told to."""

from __future__ import annotations

import asyncio

from storage.tasks import TaskSet


async def test_settle_waits_for_tasks_spawned_while_waiting() -> None:
    tasks = TaskSet()

    async def first() -> None:
        await asyncio.sleep(0.05)
        tasks.spawn(asyncio.sleep(0.05), name="second")

    tasks.spawn(first(), name="first")
    assert await tasks.settle(5)
    assert len(tasks) == 0


async def test_settle_gives_up_without_cancelling() -> None:
    tasks = TaskSet()
    slow = tasks.spawn(asyncio.sleep(5), name="slow")
    assert not await tasks.settle(0.05)
    assert not slow.cancelled()
    assert tasks.names() == ["slow"]
    await tasks.cancel_all()


async def test_settle_ends_when_cut_short() -> None:
    tasks, hurry = TaskSet(), asyncio.Event()
    tasks.spawn(asyncio.sleep(5), name="slow")
    asyncio.get_running_loop().call_later(0.05, hurry.set)
    async with asyncio.timeout(1):
        assert not await tasks.settle(30, unless=hurry)
    await tasks.cancel_all()


async def test_a_task_that_ignores_cancelling_is_left_behind() -> None:
    """A stop must not wait forever on work that will not end (`bot.app.finish_work`)."""
    tasks, release = TaskSet(), asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            await release.wait()  # ignores the cancel until released

    tasks.spawn(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    tasks.cancel()
    assert not await tasks.settle(0.1)
    assert tasks.names() == ["stubborn"]
    release.set()
    assert await tasks.settle(1)
