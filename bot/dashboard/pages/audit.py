"""Audit: the trail, filtered, and whether its hash chain still holds."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiohttp import web

from bot.config import Role
from bot.dashboard.auth import Viewer
from bot.dashboard.web import page, render
from bot.runs.runner import Runner
from storage import history
from storage.audit import AuditLog
from storage.db import Database
from storage.history import AuditFilter

PAGE_SIZE = 100
EVENT_NUMBER = re.compile(r"[0-9]{1,18}")  # ASCII digits only, and within a 64-bit id
MAX_FILTER_CHARS = 200


@dataclass(frozen=True, slots=True)
class Parts:
    """What the audit page uses."""

    runner: Runner
    db: Database
    audit: AuditLog


PARTS = web.AppKey("audit", Parts)


@page(Role.ADMIN)  # as /audit in chat
async def audit(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    parts = request.app[PARTS]
    query = request.query
    before = query.get("before", "")
    number = EVENT_NUMBER.fullmatch(before)
    problems = [] if number or not before else ["before: not an event number"]
    wanted = AuditFilter(
        actor=query.get("actor", "")[:MAX_FILTER_CHARS].strip(),
        action=query.get("action", "")[:MAX_FILTER_CHARS].strip(),
        subject=query.get("subject", "")[:MAX_FILTER_CHARS].strip(),
        before_id=int(before) if number else None,
        limit=PAGE_SIZE,
    )
    await parts.runner.flush()
    events = [] if problems else await history.audit_events(parts.db, wanted)
    broken = (await parts.audit.verify()).broken
    older = events[-1].id if len(events) == PAGE_SIZE else None
    return render(
        request,
        "audit.html",
        viewer,
        status=400 if problems else 200,
        problems=problems,
        events=events,
        broken=broken,
        query=query,
        older=older,
        filters={k: v for k, v in query.items() if k != "before"},
    )
