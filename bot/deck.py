"""The services one running deck shares; built once in `bot.graph`, handed to commands.

Every field exists when the deck is constructed: the outbox, the transport links and
the scheduler are built before it (`bot.graph`) and started by `bot.app`. `scheduler`
is None only when `[scheduler] enabled = false`. The web dashboard and the metrics
endpoint are built on the deck, so they are not fields of it (`bot.app.App`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from bot.access import Access
from bot.config import Config
from bot.delivery.outbox import Outbox
from bot.delivery.postman import Postman
from bot.delivery.transport_links import TransportLinks
from bot.intake.routing import Routing
from bot.invites import Invites
from bot.lanes import ChatLanes
from bot.runs.approvals import Approvals
from bot.runs.brakes import Brakes
from bot.runs.runner import Runner
from roster.mcp.pool import McpPool
from roster.providers import Providers
from roster.roster import Roster
from scheduler.service import Scheduler
from storage.audit import AuditLog
from storage.chat_models import ChatModels
from storage.clock import Clock
from storage.db import Database
from storage.memory import Memory
from storage.secrets import Vault
from storage.tasks import TaskSet
from storage.writer import WriteBehind


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
    providers: Providers  # the model endpoints, by name (`[llm]` is `default`)
    chat_models: ChatModels  # the model each chat picked for an agent (/model)
    vault: Vault
    routing: Routing
    mcp: McpPool  # the MCP servers agents list; each started on first use
    invites: Invites  # people added by `/invite` codes
    writer: WriteBehind  # the group-committing writes the outbox queues on
    outbox: Outbox
    links: TransportLinks  # each transport up, or retried (`bot.delivery.transport_links`)
    scheduler: Scheduler | None  # None when [scheduler] enabled = false
    tasks: TaskSet
    started_at: datetime  # when this deck was built (its start began)
    lanes: ChatLanes = field(init=False)
    # Set once everything has started: work that came in earlier (a transport receives
    # before the dashboard is up) waits for it rather than finding parts missing.
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.lanes = ChatLanes(self.tasks)
