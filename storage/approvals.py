"""Approval rows: the queries the approvals service needs, and nothing else."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_
from sqlmodel import col, select, update

from storage.db import Database
from storage.faults import retrying
from storage.models import Approval, ApprovalState, Run, RunState

CONVERSATION = "conversation"
ENDED = "conversation-ended"


class ApprovalStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, approval: Approval) -> None:
        """Store a new approval (waiting out an unreachable or full database; a retry
        after a lost answer finds the row stored and leaves it)."""
        statement = self._db.insert(Approval).values(approval.model_dump()).on_conflict_do_nothing()
        await self._write(statement)

    async def get(self, approval_id: str) -> Approval | None:
        async with self._db.session() as session:
            return await session.get(Approval, approval_id)

    async def pending(self, *, due_by: datetime | None = None) -> Sequence[Approval]:
        """Pending approvals, oldest first; with `due_by`, only those expired by then."""
        query = select(Approval).where(Approval.status == ApprovalState.PENDING)
        if due_by is not None:
            query = query.where(col(Approval.expires_at) <= due_by)
        async with self._db.session() as session:
            return (await session.exec(query.order_by(col(Approval.created_at)))).all()

    async def first_pending(self, run_id: str) -> str | None:
        """The id of the run's oldest pending approval: the card its agent waits on."""
        query = select(Approval.id).where(
            Approval.run_id == run_id, Approval.status == ApprovalState.PENDING
        )
        async with self._db.session() as session:
            return (await session.exec(query.order_by(col(Approval.created_at)))).first()

    async def decided_unresumed(self) -> list[Approval]:
        """For each run still waiting with no approval pending: its newest decided one.

        A decision is stored before its run resumes; a crash in between leaves these.
        """
        waiting = select(Run.id).where(Run.status == RunState.WAITING)
        pending = select(Approval.run_id).where(
            Approval.status == ApprovalState.PENDING, col(Approval.run_id).is_not(None)
        )
        query = select(Approval).where(
            col(Approval.run_id).in_(waiting.scalar_subquery()),
            col(Approval.run_id).not_in(pending.scalar_subquery()),
            Approval.status != ApprovalState.PENDING,
        )
        async with self._db.session() as session:
            rows = (await session.exec(query.order_by(col(Approval.created_at)))).all()
        return list({row.run_id: row for row in rows}.values())  # the newest per run

    async def granted(self, chat: str, agent: str, action_hash: str) -> Approval | None:
        query = select(Approval).where(
            Approval.chat_id == chat,
            Approval.agent == agent,
            Approval.action_hash == action_hash,
            Approval.scope == CONVERSATION,
            Approval.status == ApprovalState.APPROVED,
        )
        async with self._db.session() as session:
            return (await session.exec(query.limit(1))).first()

    async def approved_since(self, since: datetime) -> Sequence[Approval]:
        query = select(Approval).where(
            Approval.status == ApprovalState.APPROVED, col(Approval.decided_at) >= since
        )
        async with self._db.session() as session:
            return (await session.exec(query)).all()

    async def end_conversation(self, chat: str) -> None:
        await self._set(
            (col(Approval.chat_id) == chat, col(Approval.scope) == CONVERSATION), scope=ENDED
        )

    async def change(self, approval_id: str, **values: Any) -> None:
        await self._set((col(Approval.id) == approval_id,), **values)

    async def settle(self, approval_id: str, **values: Any) -> bool:
        """Compare-and-set on `pending`: True only for the one writer that decided it.

        A retry after a lost answer finds the row decided by this very call (the same
        decider at the same instant) and counts it as its own.
        """
        still = col(Approval.status) == ApprovalState.PENDING
        if values.get("decided_at") is not None:
            ours = and_(
                col(Approval.decided_by) == values.get("decided_by"),
                col(Approval.decided_at) == values["decided_at"],
            )
            still = or_(still, ours)
        return await self._set((col(Approval.id) == approval_id, still), **values) == 1

    async def _set(self, where: tuple[Any, ...], **values: Any) -> int:
        return await self._write(update(Approval).where(*where).values(**values))

    async def _write(self, statement: Any) -> int:
        async def once() -> int:
            async with self._db.session() as session:
                result = await session.exec(statement)
                await session.commit()
            return int(result.rowcount or 0)

        return await retrying(once, "writing an approval", pressure=self._db.pressure)
