"""Read-only queries over what happened: runs, their parts, audit events, the outbox.

For the operator dashboard: every query is bounded by a limit, filters are typed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, func, or_
from sqlmodel import col, select

from storage.db import Database
from storage.models import (
    Approval,
    ApprovalState,
    AuditEvent,
    OutboxMessage,
    OutboxState,
    Run,
    RunAttachment,
    RunState,
    ToolCall,
)

LIVE_STATES = (RunState.RUNNING, RunState.WAITING)


@dataclass(frozen=True, slots=True)
class RunFilter:
    agent: str = ""
    status: RunState | None = None
    chat: str = ""
    since: datetime | None = None
    until: datetime | None = None
    before: Run | None = None  # paging: runs older than this one (by start, then id)
    limit: int = 100


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor: str = ""
    action: str = ""  # a prefix: "approval" matches approval.approved, approval.refused, ...
    subject: str = ""
    before_id: int | None = None  # paging: events older than this row
    limit: int = 100


@dataclass(frozen=True, slots=True)
class RunParts:
    """What a run consists of besides its row."""

    tool_calls: list[ToolCall]
    approvals: list[Approval]
    events: list[AuditEvent]
    attachments: list[RunAttachment] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outbox of one transport: what waits, what was given up, when it last delivered."""

    pending: int = 0
    undelivered: int = 0
    last_sent_at: datetime | None = None


async def runs(db: Database, wanted: RunFilter) -> list[Run]:
    query = select(Run).order_by(col(Run.started_at).desc(), col(Run.id).desc()).limit(wanted.limit)
    if wanted.before is not None:
        started, run_id = wanted.before.started_at, wanted.before.id
        query = query.where(
            or_(
                col(Run.started_at) < started,
                and_(col(Run.started_at) == started, col(Run.id) < run_id),
            )
        )
    if wanted.agent:
        query = query.where(Run.agent == wanted.agent)
    if wanted.status is not None:
        query = query.where(Run.status == wanted.status)
    if wanted.chat:
        query = query.where(Run.chat_id == wanted.chat)
    if wanted.since is not None:
        query = query.where(col(Run.started_at) >= wanted.since)
    if wanted.until is not None:
        query = query.where(col(Run.started_at) < wanted.until)
    async with db.session() as session:
        return list((await session.exec(query)).all())


async def runs_by_id(db: Database, ids: Sequence[str]) -> list[Run]:
    if not ids:
        return []
    query = select(Run).where(col(Run.id).in_(list(ids))).order_by(col(Run.started_at))
    async with db.session() as session:
        return list((await session.exec(query)).all())


async def run(db: Database, run_id: str) -> Run | None:
    async with db.session() as session:
        return await session.get(Run, run_id)


async def runs_with_prefix(db: Database, prefix: str, limit: int = 10) -> list[Run]:
    """Runs whose id starts with `prefix` (taken literally: `%` and `_` match themselves)."""
    query = (
        select(Run)
        .where(col(Run.id).startswith(prefix, autoescape=True))
        .order_by(col(Run.started_at).desc())
        .limit(limit)
    )
    async with db.session() as session:
        return list((await session.exec(query)).all())


async def run_parts(db: Database, run_id: str, limit: int = 200) -> RunParts:
    async with db.session() as session:
        calls = select(ToolCall).where(ToolCall.run_id == run_id).order_by(col(ToolCall.id))
        approvals = (
            select(Approval).where(Approval.run_id == run_id).order_by(col(Approval.created_at))
        )
        events = select(AuditEvent).where(AuditEvent.subject == run_id).order_by(col(AuditEvent.id))
        files = (
            select(RunAttachment)
            .where(RunAttachment.run_id == run_id)
            .order_by(col(RunAttachment.id))
        )
        return RunParts(
            tool_calls=list((await session.exec(calls.limit(limit))).all()),
            approvals=list((await session.exec(approvals.limit(limit))).all()),
            events=list((await session.exec(events.limit(limit))).all()),
            attachments=list((await session.exec(files.limit(limit))).all()),
        )


async def job_runs(db: Database, limit: int = 50) -> list[Run]:
    """The newest runs started by jobs."""
    query = (
        select(Run)
        .where(col(Run.job_id).is_not(None))
        .order_by(col(Run.started_at).desc())
        .limit(limit)
    )
    async with db.session() as session:
        return list((await session.exec(query)).all())


async def decided_approvals(db: Database, limit: int = 20) -> list[Approval]:
    query = (
        select(Approval)
        .where(Approval.status != ApprovalState.PENDING)
        .order_by(col(Approval.decided_at).desc())
        .limit(limit)
    )
    async with db.session() as session:
        return list((await session.exec(query)).all())


async def audit_events(db: Database, wanted: AuditFilter) -> list[AuditEvent]:
    """Newest first."""
    query = select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(wanted.limit)
    if wanted.actor:
        query = query.where(AuditEvent.actor == wanted.actor)
    if wanted.action:
        query = query.where(col(AuditEvent.action).startswith(wanted.action, autoescape=True))
    if wanted.subject:
        query = query.where(AuditEvent.subject == wanted.subject)
    if wanted.before_id is not None:
        query = query.where(col(AuditEvent.id) < wanted.before_id)
    async with db.session() as session:
        return list((await session.exec(query)).all())


async def deliveries(db: Database) -> dict[str, Delivery]:
    """The outbox per transport (the chat id's prefix)."""
    query = select(
        OutboxMessage.chat_id, OutboxMessage.state, func.count(), func.max(OutboxMessage.sent_at)
    ).group_by(col(OutboxMessage.chat_id), col(OutboxMessage.state))
    async with db.session() as session:
        rows = (await session.exec(query)).all()
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    last: dict[str, datetime] = {}
    for chat, state, count, sent_at in rows:
        transport = chat.partition(":")[0]
        counts[transport][state] += count
        if sent_at is not None and (transport not in last or sent_at > last[transport]):
            last[transport] = sent_at
    return {
        name: Delivery(
            pending=by_state[OutboxState.PENDING],
            undelivered=by_state[OutboxState.UNDELIVERED],
            last_sent_at=last.get(name),
        )
        for name, by_state in counts.items()
    }


async def pulse(db: Database) -> tuple[object, ...]:
    """A cheap fingerprint of live work: it changes when a run starts or ends, or a card waits."""
    async with db.session() as session:
        newest = (await session.exec(select(func.max(Run.started_at)))).one()
        live = (
            await session.exec(select(func.count()).where(col(Run.status).in_(LIVE_STATES)))
        ).one()
        pending = (
            await session.exec(select(Approval.id).where(Approval.status == ApprovalState.PENDING))
        ).all()
    return (newest, live, tuple(sorted(pending)))
