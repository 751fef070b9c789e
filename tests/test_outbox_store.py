"""The outbox rows of the chat path, on SQLite and PostgreSQL: written behind, once per
key, and picked up again by the delivery loop as the state of their attempt says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage.clock import FakeClock
from storage.db import Database
from storage.models import OutboxState
from storage.outbox import LEASE, OutboxStore
from storage.writer import WriteBehind

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


async def test_rows_are_recorded_behind_once_per_key_and_marked(db: Database) -> None:
    clock = FakeClock(T0)
    async with WriteBehind(db) as writer:
        store = OutboxStore(db=db, clock=clock, writer=writer)
        payload = {"text": [["hi", "plain", None]], "buttons": []}
        for key in ("u:1#1", "u:1#2", "u:1#3"):
            store.record(key, chat="slack:C1", thread=None, payload=payload, sending=True)
        store.sent_behind("u:1#1", "111.1")
        store.failed_behind("u:1#2", T0 + timedelta(seconds=5), "TransportDown: refused")
        store.in_doubt_behind("u:1#3", "DeliveryUncertain: no answer")
        # The same key again (an update handled twice) is skipped, not an error.
        store.record("u:1#1", chat="slack:C1", thread=None, payload=payload, sending=True)
        await store.settle()
        sent, failed, doubtful = [await store.get(k) for k in ("u:1#1", "u:1#2", "u:1#3")]
    assert sent is not None
    assert (sent.state, sent.message_id) == (OutboxState.SENT, "111.1")
    assert failed is not None
    assert failed.state == OutboxState.PENDING
    assert doubtful is not None
    assert doubtful.state == OutboxState.IN_DOUBT
    due_now = [row.key for row in await store.due(["slack"])]
    assert due_now == ["u:1#3"]  # the failed one waits for its pause
    at_start = sorted(row.key for row in await store.due(["slack"], backoff_over=True))
    assert at_start == ["u:1#2", "u:1#3"]  # a restart tries the waiting ones at once


async def test_an_attempt_cut_short_is_picked_up_when_its_lease_runs_out(db: Database) -> None:
    clock = FakeClock(T0)
    async with WriteBehind(db) as writer:
        store = OutboxStore(db=db, clock=clock, writer=writer)
        store.record("u:2#1", chat="telegram:5", thread=None, payload={}, sending=True)
        await store.settle()
    assert await store.due(["telegram"], backoff_over=True) == []  # someone may be sending
    clock.advance(LEASE + timedelta(seconds=1))
    (mine,) = await store.due(["telegram"])
    (theirs,) = await store.due(["telegram"])  # another process saw it too
    assert mine.state == OutboxState.SENDING  # the caller treats it as in doubt
    assert await store.lease(mine)
    assert not await store.lease(theirs)  # the lease is taken once
