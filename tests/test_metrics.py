"""The Prometheus endpoint, scraped over HTTP: runs by agent and status, latency, approvals,
errors, queue lengths, open tasks; and the text format itself."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from prometheus_client import CONTENT_TYPE_LATEST

from bot.app import App, open_app, open_deck
from bot.config import Config
from bot.deck import Deck
from bot.metrics.server import MetricsStartError
from storage.models import InboxItem, OutboxMessage
from tests.fakes.chat import ChatRecorder
from tests.support.config import make_config
from tests.support.metrics import scrape
from tests.support.waiting import eventually

CONFIG = """
[deck]
default_agent = "echo"
[metrics]
enabled = true
port = 0
[[users]]
id = "test:admin"
role = "admin"
[[users]]
id = "test:op"
role = "operator"
[[agents]]
name = "echo"
kind = "echo"
[[agents]]
name = "broken"
kind = "command"
command = ["/bin/sh", "-c", "exit 3"]
[[agents]]
name = "deploy"
kind = "command"
command = ["echo", "deployed {input}"]
approval = "always"
approvers = ["admin"]
"""


async def waiting_card(deck: Deck) -> str:
    """The id of the approval waiting now, once it is there."""
    pending = await eventually(deck.approvals.pending, step=0.01)
    return pending[0].id


@asynccontextmanager
async def app_with_chat(config: Config) -> AsyncIterator[tuple[App, ChatRecorder]]:
    """A started deck (with its metrics endpoint, if on) whose only transport is a recorder."""
    chat = ChatRecorder()
    async with asyncio.timeout(60), open_app(config, transports=[chat]) as app:
        yield app, chat


async def test_runs_latency_approvals_errors_queues_and_tasks() -> None:
    async with app_with_chat(make_config(CONFIG)) as (app, chat):
        deck, metrics = app.deck, app.metrics
        assert metrics is not None
        await chat.say("one", user="test:op")
        await chat.say("two", user="test:op")
        await chat.say("/ask broken now", user="test:op")
        await chat.wait_for("echo: two")
        await chat.wait_for("exit 3")
        await chat.say("/ask deploy v1", user="test:op")
        await chat.press(f"{await waiting_card(deck)}:approve")
        await chat.wait_for("exit 0")
        await chat.say("/ask deploy v2", user="test:op")
        await chat.press(f"{await waiting_card(deck)}:deny")
        await chat.wait_for("Nothing ran.")
        await chat.say("/ask deploy v3", user="test:op")  # left waiting
        await waiting_card(deck)
        logging.getLogger("test.boom").error("something broke")
        async with deck.db.session() as session:
            session.add(InboxItem(key="test:unhandled", payload={}, received_at=deck.clock.now()))
            later = deck.clock.now() + timedelta(days=1)  # not tried during the test
            session.add(
                OutboxMessage(
                    key="k1",
                    chat_id="test:gone",
                    payload={},
                    next_attempt_at=later,
                    created_at=later,
                )
            )
            await session.commit()

        kind, samples = await scrape(metrics.url)

    assert kind == CONTENT_TYPE_LATEST
    assert samples['agentdeck_runs_total{agent="echo",status="done"}'] == 2
    assert samples['agentdeck_runs_total{agent="broken",status="failed"}'] == 1
    assert samples['agentdeck_runs_total{agent="deploy",status="done"}'] == 1
    assert samples['agentdeck_runs_total{agent="deploy",status="denied"}'] == 1
    assert samples['agentdeck_runs_started_total{agent="deploy"}'] == 3
    assert samples['agentdeck_run_duration_seconds_count{agent="echo"}'] == 2
    assert samples['agentdeck_run_duration_seconds_bucket{agent="echo",le="+Inf"}'] == 2
    assert samples['agentdeck_run_duration_seconds_bucket{agent="echo",le="60.0"}'] == 2
    assert 0 < samples['agentdeck_run_duration_seconds_sum{agent="echo"}'] < 60
    assert samples['agentdeck_approvals_total{outcome="requested"}'] == 3
    assert samples['agentdeck_approvals_total{outcome="approved"}'] == 1
    assert samples['agentdeck_approvals_total{outcome="denied"}'] == 1
    assert samples['agentdeck_errors_total{logger="test.boom"}'] == 1
    assert samples['agentdeck_queue_length{queue="approvals"}'] == 1
    assert samples['agentdeck_queue_length{queue="inbox"}'] == 1
    assert samples['agentdeck_queue_length{queue="outbox"}'] == 1
    assert samples['agentdeck_queue_length{queue="outbox_undelivered"}'] == 0
    assert samples["agentdeck_runs_active"] == 0
    assert samples['agentdeck_tasks{scope="all"}'] >= samples['agentdeck_tasks{scope="deck"}']
    assert samples["process_resident_memory_bytes"] > 10_000_000
    assert samples["process_cpu_seconds_total"] > 0
    assert samples['python_gc_collections_total{generation="0"}'] >= 0
    assert not [name for name in samples if name.endswith("_created")]
    python_info = [name for name in samples if name.startswith("python_info{")]
    assert len(python_info) == 1


async def test_off_by_default_and_a_busy_port_is_one_clear_error() -> None:
    async with app_with_chat(make_config(CONFIG.replace("enabled = true", ""))) as (app, _):
        assert app.metrics is None
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = make_config(CONFIG.replace("port = 0", f"port = {port}"))
        with pytest.raises(MetricsStartError) as caught:
            async with open_deck(config, transports=[]):
                pass
    assert str(caught.value).startswith(f"The metrics endpoint cannot listen on 127.0.0.1:{port}: ")
    assert str(caught.value).endswith("Change [metrics] listen/port, or stop what uses it.")
