"""Audit: the trail, filtered, and whether its hash chain still holds."""

from __future__ import annotations

import re

from aiohttp import web

from bot.config import Role
from bot.dashboard.auth import Viewer
from bot.dashboard.web import DECK, page, render
from storage import history
from storage.history import AuditFilter

PAGE_SIZE = 100
EVENT_NUMBER = re.compile(r"[0-9]{1,18}")  # ASCII digits only, and within a 64-bit id
MAX_FILTER_CHARS = 200


@page(Role.ADMIN)  # as /audit in chat
async def audit(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    deck = request.app[DECK]
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
    await deck.runner.flush()
    events = [] if problems else await history.audit_events(deck.db, wanted)
    broken = (await deck.audit.verify()).broken
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
