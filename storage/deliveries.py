"""Webhook deliveries a trigger took, by delivery id: a retry of one runs nothing.

A delivery is stored before it is answered and before its run starts (`take`); a second
delivery with the same id finds the row and is answered as a repeat. Its run is started
by whoever moves the row from `received` to `started` (`claim`, one UPDATE): one process,
once. A crash between the store and the claim leaves a `received` row that the next start
runs (`unstarted`); a crash after the claim leaves the run itself, which is reported as
interrupted like any other. So a delivery runs at most once, and is lost only if the
process dies in the instant between the claim and the run's own row.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Delete
from sqlmodel import col, delete, select, update

from storage.clock import Clock
from storage.db import Database
from storage.models import DeliveryState, TriggerDelivery

KEEP = timedelta(days=30)  # senders retry for hours, not weeks


class Deliveries:
    def __init__(self, *, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def take(self, trigger: str, delivery_id: str, *, run_id: str, text: str) -> bool:
        """Store a delivery; False when one with this id was stored before (a retry)."""
        now = self._clock.now()
        statement = (
            self._db.insert(TriggerDelivery)
            .values(
                trigger=trigger,
                delivery_id=delivery_id,
                run_id=run_id,
                input=text,
                state=DeliveryState.RECEIVED,
                received_at=now,
            )
            .on_conflict_do_nothing(index_elements=["trigger", "delivery_id"])
        )
        async with self._db.write_session() as session:
            result = await session.exec(statement)
            await session.exec(_older_than(now - KEEP))
            await session.commit()
        return bool(result.rowcount)

    async def claim(self, trigger: str, delivery_id: str) -> bool:
        """Mark the delivery's run as started; True only for the one caller that did."""
        statement = (
            update(TriggerDelivery)
            .where(
                col(TriggerDelivery.trigger) == trigger,
                col(TriggerDelivery.delivery_id) == delivery_id,
                col(TriggerDelivery.state) == DeliveryState.RECEIVED,
            )
            .values(state=DeliveryState.STARTED)
        )
        async with self._db.write_session() as session:
            result = await session.exec(statement)
            await session.commit()
        return bool(result.rowcount)

    async def unstarted(self) -> list[TriggerDelivery]:
        """Deliveries stored whose run was not started (a crash in between), oldest first."""
        statement = (
            select(TriggerDelivery)
            .where(col(TriggerDelivery.state) == DeliveryState.RECEIVED)
            .order_by(col(TriggerDelivery.received_at))
        )
        async with self._db.session() as session:
            return list((await session.exec(statement)).all())

    async def get(self, trigger: str, delivery_id: str) -> TriggerDelivery | None:
        async with self._db.session() as session:
            return await session.get(TriggerDelivery, (trigger, delivery_id))


def _older_than(cutoff: datetime) -> Delete:
    return delete(TriggerDelivery).where(col(TriggerDelivery.received_at) < cutoff)
