"""The tables. Every change here needs an Alembic migration in `storage/migrations`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, String, Text
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
    delivered: bool = False  # the result reached the chat (the transport returned its id)
    state: dict[str, Any] = _json()  # what a suspended run needs to resume
    started_at: datetime = _when(index=True)
    finished_at: datetime | None = _when(nullable=True)
    # The process that runs it (`ProcessBeat.id`): when that process stops beating, another
    # one marks the run interrupted; a live process's runs are left alone.
    owner: str | None = Field(default=None, max_length=200, index=True)
    # The update that started it (`telegram:812`): an update with a run is never handled
    # again after a crash; its run is reported instead (and offered to run again).
    update_key: str | None = Field(default=None, max_length=200, index=True)
    # Its command's process group, the group leader's start time (clock ticks after boot,
    # /proc/<pid>/stat field 22: a pid used again has another) and the host it runs on
    # (name and boot id): a crash leaves the group running, and the next start stops it.
    process_group: int | None = None
    process_started: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    process_host: str | None = Field(default=None, max_length=200)


class ToolCall(SQLModel, table=True):
    __tablename__ = "tool_calls"
    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=32, index=True)
    tool: str = Field(max_length=100)
    arguments: dict[str, Any] = _json()
    result: str = _text()
    status: str = Field(default="done", max_length=20)
    created_at: datetime = _when()


class RunAttachment(SQLModel, table=True):
    """A file sent with the message a run answers (kept under the data directory)."""

    __tablename__ = "attachments"
    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=32, index=True)
    name: str = Field(max_length=255)
    kind: str = Field(max_length=20)
    size: int = Field(default=0, sa_type=BigInteger)
    path: str = Field(max_length=1000)
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
    # The policy as it was when asked (self_approval, escalate_after_minutes, escalate_to).
    policy: dict[str, Any] = _json()
    # "once", or "conversation": identical actions of this agent in this chat run unasked.
    scope: str = Field(default="once", max_length=20)
    preview: str = _text()
    created_at: datetime = _when()
    expires_at: datetime = _when()
    decided_at: datetime | None = _when(nullable=True)
    escalated_at: datetime | None = _when(nullable=True)


class JobState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    DONE = "done"  # a one-off job that has run
    REMOVED = "removed"  # kept for its run history; never scheduled again


class Job(SQLModel, table=True):
    """A scheduled agent run; this table, not APScheduler, is the source of truth.

    `version` grows with every change that matters to the schedule, so the process
    that runs the scheduler can pick up changes made by other processes.
    """

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_next_run_at", "state", "next_run_at"),)
    id: str = Field(primary_key=True, max_length=32)
    agent: str = Field(max_length=100)
    input: str = _text()
    trigger: str = Field(max_length=20)  # interval | cron | date
    spec: str = Field(max_length=200)  # "1800" seconds, "0 9 * * 1-5", ISO datetime
    timezone: str = Field(default="UTC", max_length=64)
    chat_id: str = Field(max_length=200)  # where it was created
    thread_id: str | None = Field(default=None, max_length=200)
    report_to: str | None = Field(default=None, max_length=200)  # else chat_id / thread_id
    created_by: str = Field(max_length=200)
    source: str = Field(default="chat", max_length=20)  # chat | config
    state: JobState = Field(default=JobState.ACTIVE, sa_column=Column(String(20), nullable=False))
    version: int = 1
    last_run_at: datetime | None = _when(nullable=True)  # the last scheduled time claimed
    next_run_at: datetime | None = _when(nullable=True)
    last_status: str | None = Field(default=None, max_length=20)
    # Missed runs are counted from here (creation, resume), never from before.
    active_since: datetime = _when()
    created_at: datetime = _when()
    updated_at: datetime = _when(index=True)


class JobFire(SQLModel, table=True):
    """One claimed firing of a job: the primary key makes each due run fire once.

    Two processes that both believe a run is due race on the insert; one row wins.
    """

    __tablename__ = "job_fires"
    job_id: str = Field(primary_key=True, max_length=32)
    scheduled_for: datetime = Field(sa_column=Column(UTCDateTime(), primary_key=True))
    kind: str = Field(max_length=20)  # scheduled | catchup | skipped | manual
    missed: int = 0  # runs coalesced into this one (or skipped) after a downtime
    run_id: str | None = Field(default=None, max_length=32, index=True)
    claimed_by: str = Field(max_length=200)
    claimed_at: datetime = _when(index=True)


class SchedulerState(SQLModel, table=True):
    """Who runs the scheduler, and its heartbeat (one row)."""

    __tablename__ = "scheduler_state"
    name: str = Field(primary_key=True, max_length=40)
    holder: str = Field(max_length=200)
    since: datetime = _when()
    heartbeat_at: datetime = _when()


class OutboxState(StrEnum):
    PENDING = "pending"  # due at next_attempt_at; any earlier attempt provably failed
    SENDING = "sending"  # an attempt is in flight until next_attempt_at (its lease)
    IN_DOUBT = "in_doubt"  # an attempt may have reached the platform: look before resending
    SENT = "sent"
    UNDELIVERED = "undelivered"  # the retries ran out; kept, and the admin chat told
    UNCONFIRMED = "unconfirmed"  # may have arrived, the platform cannot say; admin told


class OutboxMessage(SQLModel, table=True):
    """A message that must reach a chat: kept until the transport returned its id."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_state_next_attempt_at", "state", "next_attempt_at"),)
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, unique=True)  # idempotency key: one row per message
    chat_id: str = Field(max_length=200)
    thread_id: str | None = Field(default=None, max_length=200)
    payload: dict[str, Any] = _json()
    subject: str = Field(default="", max_length=200)  # what it is about: "run:<id>"
    state: OutboxState = Field(
        default=OutboxState.PENDING, sa_column=Column(String(20), nullable=False)
    )
    attempts: int = 0
    next_attempt_at: datetime = _when()
    last_error: str | None = _text(nullable=True)
    message_id: str | None = Field(default=None, max_length=200)
    created_at: datetime = _when()
    sent_at: datetime | None = _when(nullable=True)


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
    # The process that took it: only a dead process's unhandled updates are taken over.
    owner: str | None = Field(default=None, max_length=200)


class ProcessBeat(SQLModel, table=True):
    """A running agentdeck process and its heartbeat; one row per process while it runs."""

    __tablename__ = "processes"
    id: str = Field(primary_key=True, max_length=200)  # host:pid:random, see `process_id`
    started_at: datetime = _when()
    heartbeat_at: datetime = _when(index=True)


class ThreadAgent(SQLModel, table=True):
    """The agent a chat thread talks to, shared by every process serving the chat."""

    __tablename__ = "thread_agents"
    thread_id: str = Field(primary_key=True, max_length=200)
    agent: str = Field(max_length=100)
    updated_at: datetime = _when(index=True)


class DashboardLink(SQLModel, table=True):
    """A dashboard sign-in link that was used: the primary key makes each link work once."""

    __tablename__ = "dashboard_links"
    id: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(max_length=200)
    used_at: datetime = _when(index=True)


class RevokedSession(SQLModel, table=True):
    """A dashboard session ended by signing out: its cookie is refused until it expires."""

    __tablename__ = "revoked_sessions"
    id: str = Field(primary_key=True, max_length=64)  # the session's nonce
    user_id: str = Field(max_length=200)
    revoked_at: datetime = _when()
    expires_at: datetime = _when(index=True)  # the session's own end: forgotten after it


class ChatModel(SQLModel, table=True):
    """The model a chat switched an llm agent to (`/model`); no row: the agent's own."""

    __tablename__ = "chat_models"
    chat_id: str = Field(primary_key=True, max_length=200)
    agent: str = Field(primary_key=True, max_length=100)
    model: str = Field(max_length=300)  # as `roster.providers` labels it
    set_by: str = Field(max_length=200)
    set_at: datetime = _when()


class DeliveryState(StrEnum):
    RECEIVED = "received"  # stored; its run not started yet
    STARTED = "started"  # its run was handed to the runner (once)


class TriggerDelivery(SQLModel, table=True):
    """A webhook delivery a trigger took: stored first, so a retry of it runs nothing."""

    __tablename__ = "trigger_deliveries"
    trigger: str = Field(primary_key=True, max_length=100)
    delivery_id: str = Field(primary_key=True, max_length=200)
    run_id: str = Field(max_length=64)  # chosen when stored: the run it starts has this id
    input: str = _text()  # the agent's input, from the template (scrubbed)
    state: DeliveryState = Field(
        default=DeliveryState.RECEIVED, sa_column=Column(String(20), nullable=False, index=True)
    )
    received_at: datetime = _when(index=True)


class Invite(SQLModel, table=True):
    """A one-time pairing code made by `/invite`: only its SHA-256 is kept, never the code."""

    __tablename__ = "invites"
    id: str = Field(primary_key=True, max_length=64)  # sha256 hex of the normalised code
    role: str = Field(max_length=20)
    created_by: str = Field(max_length=200)
    created_at: datetime = _when()
    expires_at: datetime = _when(index=True)
    used_by: str | None = Field(default=None, max_length=200)
    used_at: datetime | None = _when(nullable=True)


class InvitedUser(SQLModel, table=True):
    """Someone added by redeeming an invite: a role beside `[[users]]` (which wins)."""

    __tablename__ = "invited_users"
    id: str = Field(primary_key=True, max_length=200)  # `telegram:123`, `slack:U024BE7LH`
    role: str = Field(max_length=20)
    invited_by: str = Field(max_length=200)
    added_at: datetime = _when()


class AgentSession(SQLModel, table=True):
    """A coding agent's session (Claude Code, Codex) in one chat or thread: resumed by id.

    `chat_key` is the chat, or `chat/thread` for a Slack thread. `cost_total` is the CLI's
    running total for the session (Claude reports the session's sum, not the turn's), so
    a turn's own cost is the difference; `tokens_in`/`tokens_out` likewise for Codex.
    """

    __tablename__ = "agent_sessions"
    chat_key: str = Field(primary_key=True, max_length=400)
    agent: str = Field(primary_key=True, max_length=100)
    session_id: str = Field(max_length=200)
    turns: int = 0
    cost: float = 0.0  # what this session cost so far, by our count
    cost_total: float = 0.0  # the CLI's own running total, as last reported
    tokens_in: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    tokens_out: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    started_at: datetime = _when()
    used_at: datetime = _when(index=True)
