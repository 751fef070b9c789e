"""The tables. Every change here needs an Alembic migration in `storage/migrations`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, String, Text
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime


def _when(*, index: bool = False, nullable: bool = False) -> Any:
    return Field(sa_column=Column(UTCDateTime(), index=index, nullable=nullable))


def _json() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


def _text(*, nullable: bool = False) -> Any:
    return Field(default=None if nullable else "", sa_column=Column(Text, nullable=nullable))


class RunState(StrEnum):
    RUNNING = "running"
    WAITING = "waiting"  # suspended until an approval is decided
    DONE = "done"
    FAILED = "failed"
    DENIED = "denied"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # the process died while it ran


class ApprovalState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"


class Identity(SQLModel, table=True):
    """A chat identity (`telegram:123`, `slack:U024`, `console:local`) and its role."""

    __tablename__ = "identities"
    id: str = Field(primary_key=True, max_length=200)
    role: str = Field(max_length=20)
    name: str = Field(default="", max_length=200)


class Message(SQLModel, table=True):
    """One turn of conversation memory, per chat and agent."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_chat_agent", "chat_id", "agent", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    chat_id: str = Field(max_length=200)
    agent: str = Field(max_length=100)
    role: str = Field(max_length=20)  # user | assistant | summary
    content: str = _text()
    created_at: datetime = _when()


class Note(SQLModel, table=True):
    """Long-term memory an agent keeps about a chat (the `remember` tool)."""

    __tablename__ = "notes"
    id: int | None = Field(default=None, primary_key=True)
    chat_id: str = Field(max_length=200, index=True)
    agent: str = Field(max_length=100)
    text: str = _text()
    created_at: datetime = _when()


class Run(SQLModel, table=True):
    """One agent run: who asked, which agent, what happened, what it cost."""

    __tablename__ = "runs"
    id: str = Field(primary_key=True, max_length=32)
    agent: str = Field(max_length=100, index=True)
    chat_id: str = Field(max_length=200, index=True)
    thread_id: str | None = Field(default=None, max_length=200)
    user_id: str = Field(max_length=200)
    job_id: str | None = Field(default=None, max_length=32, index=True)
    input: str = _text()
    output: str = _text()
    status: RunState = Field(
        default=RunState.RUNNING, sa_column=Column(String(20), index=True, nullable=False)
    )
    error: str | None = _text(nullable=True)
    exit_code: int | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    state: dict[str, Any] = _json()  # what a suspended run needs to resume
    started_at: datetime = _when(index=True)
    finished_at: datetime | None = _when(nullable=True)


class ToolCall(SQLModel, table=True):
    __tablename__ = "tool_calls"
    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=32, index=True)
    tool: str = Field(max_length=100)
    arguments: dict[str, Any] = _json()
    result: str = _text()
    status: str = Field(default="done", max_length=20)
    created_at: datetime = _when()


class Approval(SQLModel, table=True):
    """A risky action waiting for (or decided by) the people allowed to decide."""

    __tablename__ = "approvals"
    id: str = Field(primary_key=True, max_length=16)
    run_id: str | None = Field(default=None, max_length=32, index=True)
    agent: str = Field(max_length=100)
    action: dict[str, Any] = _json()
    action_hash: str = Field(max_length=64)
    requested_by: str = Field(max_length=200)
    chat_id: str = Field(max_length=200)
    thread_id: str | None = Field(default=None, max_length=200)
    approvers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    quorum: int = 1
    status: ApprovalState = Field(
        default=ApprovalState.PENDING, sa_column=Column(String(20), index=True, nullable=False)
    )
    votes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    decided_by: str | None = Field(default=None, max_length=200)
    reason: str | None = _text(nullable=True)
    card: dict[str, Any] = _json()  # where the card was posted, to edit it later
    created_at: datetime = _when()
    expires_at: datetime = _when()
    decided_at: datetime | None = _when(nullable=True)


class Job(SQLModel, table=True):
    """A scheduled agent run; this table, not APScheduler, is the source of truth."""

    __tablename__ = "jobs"
    id: str = Field(primary_key=True, max_length=32)
    agent: str = Field(max_length=100)
    input: str = _text()
    trigger: str = Field(max_length=20)  # interval | cron | date
    spec: str = Field(max_length=200)  # "1800" seconds, "0 9 * * 1-5", ISO datetime
    timezone: str = Field(default="UTC", max_length=64)
    chat_id: str = Field(max_length=200)
    thread_id: str | None = Field(default=None, max_length=200)
    created_by: str = Field(max_length=200)
    source: str = Field(default="chat", max_length=20)  # chat | config
    paused: bool = False
    last_run_at: datetime | None = _when(nullable=True)
    created_at: datetime = _when()


class Secret(SQLModel, table=True):
    """An encrypted secret: the ciphertext only, never the value."""

    __tablename__ = "secrets"
    name: str = Field(primary_key=True, max_length=100)
    ciphertext: bytes
    set_by: str = Field(max_length=200)
    set_at: datetime = _when()


class AuditEvent(SQLModel, table=True):
    """Append-only; each row carries the hash of the previous one."""

    __tablename__ = "audit_events"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _when(index=True)
    actor: str = Field(max_length=200)
    action: str = Field(max_length=60, index=True)
    subject: str = Field(default="", max_length=200)
    detail: dict[str, Any] = _json()
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class InboxItem(SQLModel, table=True):
    """An update received from a platform, stored before it is acknowledged.

    The key (`telegram:<update_id>`, `slack:<event_id>`) makes redeliveries visible;
    rows with no `handled_at` are handled again after a restart.
    """

    __tablename__ = "inbox"
    key: str = Field(primary_key=True, max_length=200)
    payload: dict[str, Any] = _json()
    received_at: datetime = _when()
    handled_at: datetime | None = _when(nullable=True, index=True)
