"""The services one running deck shares; built once in `bot.app`, handed to commands."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from bot.access import Access
from bot.config import Config
from bot.delivery.outbox import Outbox
from bot.delivery.postman import Postman
from bot.delivery.transport_links import TransportLinks
from bot.intake.routing import Routing
from bot.lanes import ChatLanes
from bot.runs.approvals import Approvals
from bot.runs.brakes import Brakes
from bot.runs.runner import Runner
from roster.llm import ModelClient
from roster.mcp.pool import McpPool
from roster.roster import Roster
from scheduler.service import Scheduler
from storage.audit import AuditLog
from storage.clock import Clock
from storage.db import Database
from storage.memory import Memory
from storage.secrets import Vault
from storage.tasks import TaskSet
from storage.writer import WriteBehind

if TYPE_CHECKING:
    from bot.dashboard import Dashboard
    from bot.mcp_serve.server import HttpListener
    from bot.metrics import MetricsServer


@dataclass(slots=True)
class Deck:
    config: Config
    db: Database
    clock: Clock
    audit: AuditLog
    memory: Memory
    roster: Roster
    access: Access
    postman: Postman
    approvals: Approvals
    runner: Runner
    brakes: Brakes
    model: ModelClient
    vault: Vault
    routing: Routing
    mcp: McpPool  # the MCP servers agents list; each started on first use
    tasks: TaskSet = field(default_factory=TaskSet)
    lanes: ChatLanes = field(init=False)
    # Set once everything has started: work that came in earlier (a transport receives
    # before the dashboard is up) waits for it rather than finding parts missing.
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    started_at: datetime | None = None
    scheduler: Scheduler | None = None  # None when [scheduler] enabled = false
    outbox: Outbox | None = None
    writer: WriteBehind | None = None  # the group-committing writes the outbox queues on
    links: TransportLinks | None = (
        None  # each transport up, or retried (`bot.delivery.transport_links`)
    )
    dashboard: Dashboard | None = None  # None when [dashboard] enabled = false
    metrics: MetricsServer | None = None  # None when [metrics] enabled = false
    mcp_http: HttpListener | None = None  # None unless [mcp] port is set

    def __post_init__(self) -> None:
        self.lanes = ChatLanes(self.tasks)
