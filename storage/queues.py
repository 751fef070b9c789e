"""How much work waits in the durable queues: for the metrics endpoint and the soak bench."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import col, select

from storage.db import Database
from storage.models import Approval, ApprovalState, InboxItem, OutboxMessage, OutboxState


@dataclass(frozen=True, slots=True)
class QueueLengths:
    inbox_unhandled: int  # updates stored but not handled yet
    outbox_pending: int  # messages not delivered yet (still being retried)
    outbox_undelivered: int  # messages whose retries ran out
    approvals_pending: int


async def queue_lengths(db: Database) -> QueueLengths:
    """Count the rows waiting in each queue (indexed columns: cheap at any size)."""
    count = func.count()
    inbox = select(count).select_from(InboxItem).where(col(InboxItem.handled_at).is_(None))
    outbox = (
        select(OutboxMessage.state, count)
        .where(col(OutboxMessage.state) != OutboxState.SENT)
        .group_by(col(OutboxMessage.state))
    )
    approvals = select(count).select_from(Approval).where(Approval.status == ApprovalState.PENDING)
    async with db.session() as session:
        unhandled = (await session.exec(inbox)).one()
        by_state = {state: n for state, n in (await session.exec(outbox)).all()}
        pending = (await session.exec(approvals)).one()
    return QueueLengths(
        inbox_unhandled=int(unhandled),
        outbox_pending=sum(
            int(by_state.get(state, 0))
            for state in (OutboxState.PENDING, OutboxState.SENDING, OutboxState.IN_DOUBT)
        ),
        outbox_undelivered=int(by_state.get(OutboxState.UNDELIVERED, 0))
        + int(by_state.get(OutboxState.UNCONFIRMED, 0)),
        approvals_pending=int(pending),
    )
