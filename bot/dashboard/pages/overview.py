"""Overview: agents and their state, live work, waiting cards, next jobs, transports, spend."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from bot.dashboard.auth import Viewer
from bot.dashboard.pages import cost
from bot.dashboard.pages.cost import today_spend
from bot.dashboard.web import page, render
from bot.delivery.postman import Postman
from bot.runs.approvals import Approvals
from bot.runs.runner import Runner
from roster.roster import Roster
from scheduler.service import Scheduler
from storage import history
from storage.db import Database
from storage.history import RunFilter
from storage.models import RunState


@dataclass(frozen=True, slots=True)
class Parts:
    """What the overview uses."""

    runner: Runner
    scheduler: Scheduler | None
    roster: Roster
    db: Database
    approvals: Approvals
    postman: Postman
    started_at: datetime
    spending: cost.Parts  # the spend today, as the cost page reckons it


PARTS = web.AppKey("overview", Parts)


@dataclass(frozen=True, slots=True)
class AgentRow:
    name: str
    kind: str
    description: str
    state: str  # ready | running | unavailable
    note: str = ""


@dataclass(frozen=True, slots=True)
class TransportRow:
    name: str
    pending: int
    undelivered: int
    last_sent_at: datetime | None

    @property
    def healthy(self) -> bool:
        return self.undelivered == 0


@page()
async def overview(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    parts = request.app[PARTS]
    await parts.runner.flush()
    active = parts.runner.active()
    next_jobs = await parts.scheduler.store.next_runs(5) if parts.scheduler else None
    return render(
        request,
        "overview.html",
        viewer,
        agents=agent_rows(parts.roster, active),
        running=await history.runs_by_id(parts.db, list(active)),
        waiting=await history.runs(parts.db, RunFilter(status=RunState.WAITING, limit=20)),
        pending=await parts.approvals.pending(),
        next_jobs=next_jobs,
        transports=await transport_rows(parts.db, parts.postman.names()),
        spend=await today_spend(parts.spending),
        started_at=parts.started_at,
    )


def agent_rows(roster: Roster, active: dict[str, str]) -> list[AgentRow]:
    running: dict[str, int] = {}
    for name in active.values():
        running[name] = running.get(name, 0) + 1
    rows = []
    for agent in roster:
        reason = roster.unavailable_reason(agent)
        if reason:
            state, note = "unavailable", reason
        elif agent.name in running:
            state, note = "running", f"{running[agent.name]} run(s)"
        else:
            state, note = "ready", ""
        kind = str(getattr(agent.spec, "kind", ""))  # every concrete spec has its tag
        rows.append(AgentRow(agent.name, kind, agent.spec.description, state, note))
    return rows


async def transport_rows(db: Database, names: list[str]) -> list[TransportRow]:
    """Each transport's outbox: waiting, undelivered, last sent."""
    outbox = await history.deliveries(db)
    rows = []
    for name in names:
        seen = outbox.get(name, history.Delivery())
        rows.append(TransportRow(name, seen.pending, seen.undelivered, seen.last_sent_at))
    return rows
