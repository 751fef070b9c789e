"""The stores behind /model and triggers, on SQLite and PostgreSQL: chat_models, deliveries."""

from __future__ import annotations

import asyncio

from storage.chat_models import ChatModels
from storage.clock import SystemClock
from storage.db import Database
from storage.deliveries import Deliveries
from tests.support.waiting import eventually


async def test_a_chat_model_is_chosen_replaced_and_cleared(db: Database) -> None:
    models = ChatModels(db=db, clock=SystemClock())
    assert await models.chosen("telegram:1", "bot") is None
    await models.choose("telegram:1", "bot", "gpt-4o", by="telegram:1")
    await models.choose("telegram:1", "bot", "openrouter:claude", by="telegram:2")
    await models.choose("telegram:2", "bot", "gpt-4o-mini", by="telegram:2")
    assert await models.chosen("telegram:1", "bot") == "openrouter:claude"
    assert await models.of_chat("telegram:1") == {"bot": "openrouter:claude"}
    assert await models.clear("telegram:1", "bot") is True
    assert await models.clear("telegram:1", "bot") is False
    assert await models.chosen("telegram:1", "bot") is None
    assert await models.chosen("telegram:2", "bot") == "gpt-4o-mini"


async def test_another_process_switch_holds_here_once_the_copy_is_read_again(
    db: Database,
) -> None:
    here = ChatModels(db=db, clock=SystemClock(), refresh_seconds=0.2)
    there = ChatModels(db=db, clock=SystemClock())  # another process on the same database
    assert await here.chosen("telegram:1", "bot") is None  # the copy is read now
    await there.choose("telegram:1", "bot", "gpt-4o", by="telegram:1")
    assert await eventually(lambda: here.chosen("telegram:1", "bot"), timeout=5) == "gpt-4o"
    await there.clear("telegram:1", "bot")
    assert await eventually(lambda: not_chosen(here), timeout=5)


async def not_chosen(models: ChatModels) -> bool:
    return await models.chosen("telegram:1", "bot") is None


async def test_a_delivery_is_taken_once_and_claimed_once(db: Database) -> None:
    deliveries = Deliveries(db=db, clock=SystemClock())
    takes = await asyncio.gather(
        *(deliveries.take("github", "d-1", run_id=f"run{n}", text="x") for n in range(5))
    )
    assert sorted(takes) == [False, False, False, False, True]
    assert await deliveries.take("alerts", "d-1", run_id="other", text="y")  # another trigger
    assert sorted((d.trigger, d.delivery_id) for d in await deliveries.unstarted()) == [
        ("alerts", "d-1"),
        ("github", "d-1"),
    ]
    claims = await asyncio.gather(*(deliveries.claim("github", "d-1") for _ in range(5)))
    assert sorted(claims) == [False, False, False, False, True]
    assert [d.trigger for d in await deliveries.unstarted()] == ["alerts"]
